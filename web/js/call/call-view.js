// The call screen for every role: tiles (self view, one per participant, one per shared
// screen), controls (microphone, camera, screen share for the host, devices, leave, end for
// everyone), the connection-quality indicator, the reconnecting banner, and the recording
// hooks' markup (see recording-ui.js). Built in JS with data-i18n keys.

import { announce } from '../live.js';
import { applyI18n, h, icon, relabel } from '../dom.js';
import { onLanguageChange, t } from '../i18n.js';
import { QualityMonitor } from './quality.js';
import { acquireMedia, fillDeviceSelect, listDevices, saveDevices, savedDevices } from './local-media.js';
import { wireRecording } from './recording-wiring.js';

function controlButton(id, iconName, shortKey, ariaKey, extraClass = '') {
  return h('button', { id, type: 'button', class: `control ${extraClass}`.trim(), 'i18n-aria-label': ariaKey },
    icon(iconName), h('span', { class: 'control-label', i18n: shortKey }));
}

export function buildCallMarkup(isHost) {
  const root = h('section', { id: 'call', class: 'call', 'aria-labelledby': 'call-heading' },
    h('h1', { id: 'call-heading', class: 'visually-hidden', i18n: 'call.region' }),
    h('div', { class: 'call-status' },
      h('span', { id: 'quality', class: 'quality', 'data-quality': 'unknown', role: 'status' },
        h('span', { class: 'quality-dot', 'aria-hidden': 'true' }),
        h('span', { id: 'quality-text', i18n: 'call.quality.unknown' })),
      h('span', { id: 'recording-indicator', class: 'rec', hidden: true },
        h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), h('span', { i18n: 'call.recording' }))),
    h('div', { id: 'reconnecting-banner', class: 'banner', hidden: true, role: 'alert' },
      h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', { i18n: 'call.reconnecting' })),
    h('div', { id: 'consent-prompt', class: 'consent card', hidden: true, role: 'dialog', 'aria-labelledby': 'consent-title' },
      h('h2', { id: 'consent-title', i18n: 'call.consent.title' }),
      h('p', { id: 'consent-text' }),
      h('div', { class: 'row' },
        h('button', { id: 'consent-yes', type: 'button', i18n: 'call.consent.yes' }),
        h('button', { id: 'consent-no', type: 'button', class: 'secondary', i18n: 'call.consent.no' }))),
    h('button', { id: 'enable-sound', type: 'button', class: 'enable-sound', hidden: true, i18n: 'call.enableSound' }),
    h('div', { id: 'tiles', class: 'tiles' }),
    h('div', { id: 'device-panel', class: 'device-panel card', hidden: true },
      h('div', { class: 'field' }, h('label', { for: 'call-camera', i18n: 'join.deviceCheck.camera' }), h('select', { id: 'call-camera' })),
      h('div', { class: 'field' }, h('label', { for: 'call-microphone', i18n: 'join.deviceCheck.microphone' }), h('select', { id: 'call-microphone' }))),
    h('div', { class: 'controls', role: 'toolbar', 'i18n-aria-label': 'call.controls' },
      controlButton('btn-mic', 'mic', 'call.micShort', 'call.mute'),
      controlButton('btn-cam', 'camera', 'call.cameraShort', 'call.cameraOff'),
      isHost ? controlButton('btn-screen', 'screen', 'call.screenShort', 'call.shareScreen') : null,
      controlButton('btn-devices', 'settings', 'call.devicesShort', 'call.devices'),
      isHost ? controlButton('btn-end-all', 'end', 'call.endShort', 'call.endForAll', 'danger') : null,
      controlButton('btn-hangup', 'hangup', 'call.leaveShort', 'call.hangUp', 'danger')),
    h('button', { id: 'consent-withdraw', type: 'button', class: 'secondary', hidden: true, i18n: 'call.consent.withdraw' }));
  applyI18n(root);
  return root;
}

export class CallView {
  constructor(session, container, { isHost, onLeave, onEndAll }) {
    this.session = session;
    this.isHost = isHost;
    this.onLeave = onLeave;
    this.onEndAll = onEndAll;
    this.root = buildCallMarkup(isHost);
    container.replaceChildren(this.root);
    this.tiles = this.root.querySelector('#tiles');
    this.tileMap = new Map(); // key `${pid}:${camera|screen}` -> tile record
    this.audioEls = new Map();
    this.quality = new QualityMonitor(() => session.pc, (s) => this.showQuality(s));
    this.bindControls();
    this.recording = wireRecording(session, this.root, { isHost });
    this.renderSelf();
    session.addEventListener('participants', () => this.renderParticipants());
    session.addEventListener('track', (e) => this.attachTrack(e.detail));
    session.addEventListener('track-unpublished', (e) => this.onUnpublished(e.detail));
    session.addEventListener('state', (e) => this.onState(e.detail));
    session.addEventListener('notice', (e) => announce(t(e.detail.key, e.detail.vars)));
    this.offLang = onLanguageChange(() => this.renderParticipants());
    this.onState(session.state);
  }

  $(sel) { return this.root.querySelector(sel); }

  bindControls() {
    this.$('#btn-mic').addEventListener('click', () => this.toggleMic());
    this.$('#btn-cam').addEventListener('click', () => this.toggleCamera());
    const screen = this.$('#btn-screen');
    if (screen) screen.addEventListener('click', () => this.toggleScreen());
    this.$('#btn-devices').addEventListener('click', () => this.toggleDevices());
    this.$('#btn-hangup').addEventListener('click', () => this.onLeave());
    const endAll = this.$('#btn-end-all');
    if (endAll) endAll.addEventListener('click', () => this.onEndAll());
    this.$('#call-camera').addEventListener('change', (e) => this.switchDevice('video', e.target.value));
    this.$('#call-microphone').addEventListener('change', (e) => this.switchDevice('audio', e.target.value));
    this.$('#enable-sound').addEventListener('click', () => this.enableSound());
  }

  onState(state) {
    this.$('#reconnecting-banner').hidden = state !== 'reconnecting';
    if (state === 'in-call') this.quality.start();
    else if (state !== 'reconnecting') this.quality.stop();
  }

  showQuality({ lossPct, rttMs, quality }) {
    const el = this.$('#quality');
    el.dataset.quality = quality;
    const text = this.$('#quality-text');
    if (quality === 'unknown' || lossPct == null) { relabel(text, { text: `call.quality.${quality}` }); return; }
    // Detail string built from dictionary parts.
    text.removeAttribute('data-i18n');
    text.textContent = t('call.quality.detail', {
      quality: t(`call.quality.${quality}`), loss: lossPct.toFixed(1), rtt: rttMs == null ? '–' : Math.round(rttMs),
    });
    el.dataset.loss = String(lossPct);
    el.dataset.rtt = String(rttMs);
  }

  // -- tiles -----------------------------------------------------------------------------

  makeTile(key, { self = false, screen = false } = {}) {
    const video = h('video', { autoplay: true, playsinline: true, muted: true, class: self ? 'mirror' : '' });
    video.muted = true; // sound plays through a separate <audio> element
    const name = h('span', { class: 'tile-name' });
    const micOff = h('span', { class: 'badge mic-off', hidden: true, 'i18n-title': 'call.muted' }, icon('mic', true), h('span', { class: 'visually-hidden', i18n: 'call.muted' }));
    const camOff = h('div', { class: 'cam-off', hidden: true }, h('span', { class: 'avatar', 'aria-hidden': 'true' }), h('span', { i18n: 'call.cameraIsOff' }));
    const caption = h('div', { class: 'tile-caption' }, name, micOff);
    const tile = h('figure', { class: `tile${self ? ' self' : ''}${screen ? ' screen' : ''}`, 'data-key': key }, video, camOff, caption);
    applyI18n(tile);
    const record = { tile, video, name, micOff, camOff, stream: new MediaStream(), removeBtn: null };
    video.srcObject = record.stream;
    this.tileMap.set(key, record);
    if (self) this.tiles.append(tile); else this.tiles.insertBefore(tile, this.tiles.querySelector('.tile.self'));
    return record;
  }

  renderSelf() {
    const rec = this.tileMap.get('self') || this.makeTile('self', { self: true });
    rec.tile.dataset.participantId = 'self';
    rec.name.dataset.i18n = 'call.you';
    applyI18n(rec.name);
    const v = this.session.local.videoTrack;
    rec.stream.getTracks().forEach((tr) => rec.stream.removeTrack(tr));
    if (v && v.readyState === 'live' && !this.session.cameraOff) rec.stream.addTrack(v);
    rec.video.srcObject = rec.stream;
    rec.video.play().catch(() => {});
    rec.camOff.hidden = !this.session.cameraOff && !!v;
    rec.micOff.hidden = !this.session.micMuted;
  }

  tileFor(pid, label) {
    const kind = label === 'screen' ? 'screen' : 'camera';
    const key = `${pid}:${kind}`;
    let rec = this.tileMap.get(key);
    if (!rec) {
      rec = this.makeTile(key, { screen: kind === 'screen' });
      rec.tile.dataset.participantId = pid;
      rec.tile.dataset.kind = kind;
      if (kind === 'camera' && this.isHost) {
        rec.removeBtn = h('button', { type: 'button', class: 'tile-remove secondary', 'i18n-aria-label': 'call.remove', 'i18n-vars': { name: '' }, i18n: 'call.removeShort' });
        rec.removeBtn.addEventListener('click', () => this.session.remove(pid));
        rec.tile.querySelector('.tile-caption').append(rec.removeBtn);
        applyI18n(rec.removeBtn);
      }
      this.renderParticipants();
    }
    return rec;
  }

  attachTrack({ participantId, label, track }) {
    if (!participantId || participantId === this.session.selfId) return;
    if (track.kind === 'audio') { this.attachAudio(participantId, track); return; }
    const rec = this.tileFor(participantId, label);
    for (const old of rec.stream.getVideoTracks()) if (old !== track) rec.stream.removeTrack(old);
    if (!rec.stream.getVideoTracks().includes(track)) rec.stream.addTrack(track);
    rec.video.srcObject = rec.stream;
    rec.video.play().catch(() => {});
    if (label === 'screen') {
      // A screen whose transceiver goes inactive fires mute: drop the tile.
      track.onmute = () => { if (rec.stream.getVideoTracks().includes(track)) this.dropTile(`${participantId}:screen`); };
    }
  }

  attachAudio(pid, track) {
    let el = this.audioEls.get(pid);
    if (!el) {
      el = h('audio', { autoplay: true, class: 'remote-audio', 'data-participant-id': pid });
      this.root.append(el);
      this.audioEls.set(pid, el);
    }
    el.srcObject = new MediaStream([track]);
    el.play().catch(() => { this.$('#enable-sound').hidden = false; });
  }

  enableSound() {
    for (const el of this.audioEls.values()) el.play().catch(() => {});
    this.$('#enable-sound').hidden = true;
  }

  onUnpublished(msg) {
    if (msg.kind === 'screen') this.dropTile(`${msg.participant_id}:screen`);
  }

  dropTile(key) {
    const rec = this.tileMap.get(key);
    if (!rec) return;
    rec.tile.remove();
    this.tileMap.delete(key);
  }

  renderParticipants() {
    const present = this.session.participants;
    for (const [key, rec] of [...this.tileMap]) {
      if (key === 'self') continue;
      const pid = rec.tile.dataset.participantId;
      const p = present.get(pid);
      if (!p) {
        this.dropTile(key);
        const audio = this.audioEls.get(pid);
        if (audio) { audio.remove(); this.audioEls.delete(pid); }
        continue;
      }
      const name = p.display_name || '';
      if (rec.tile.dataset.kind === 'screen') {
        rec.name.textContent = t('call.screenOf', { name });
      } else {
        rec.name.textContent = name;
        rec.micOff.hidden = !p.muted.audio;
        rec.camOff.hidden = !p.muted.video;
        rec.tile.classList.toggle('video-off', !!p.muted.video);
        rec.camOff.querySelector('.avatar').textContent = (name.trim()[0] || '?').toUpperCase();
        rec.tile.dataset.audioMuted = String(!!p.muted.audio);
        rec.tile.dataset.videoMuted = String(!!p.muted.video);
        if (rec.removeBtn) relabel(rec.removeBtn, { 'aria-label': 'call.remove' }, { name });
      }
      rec.video.setAttribute('aria-label', rec.name.textContent);
    }
    this.renderSelf();
  }

  // -- controls --------------------------------------------------------------------------

  toggleMic() {
    const muted = !this.session.micMuted;
    this.session.setMicMuted(muted);
    const btn = this.$('#btn-mic');
    btn.classList.toggle('off', muted);
    btn.querySelector('svg').replaceWith(icon('mic', muted));
    relabel(btn, { 'aria-label': muted ? 'call.unmute' : 'call.mute' });
    this.renderSelf();
  }

  async toggleCamera() {
    const off = !this.session.cameraOff;
    const btn = this.$('#btn-cam');
    if (off) {
      await this.session.setCameraOff(true);
    } else {
      const { stream } = await acquireMedia({ cameraId: savedDevices().cameraId || '', wantAudio: false });
      const track = stream && stream.getVideoTracks()[0];
      if (!track) return;
      await this.session.setCameraOff(false, track);
    }
    btn.classList.toggle('off', off);
    btn.querySelector('svg').replaceWith(icon('camera', off));
    relabel(btn, { 'aria-label': off ? 'call.cameraOn' : 'call.cameraOff' });
    this.renderSelf();
  }

  async toggleScreen() {
    const btn = this.$('#btn-screen');
    if (this.session.screenTrack) {
      await this.session.stopScreen();
    } else {
      let stream;
      try {
        stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      } catch {
        announce(t('call.shareFailed'));
        return;
      }
      const track = stream.getVideoTracks()[0];
      track.addEventListener('ended', () => this.markScreen(false));
      await this.session.startScreen(track, stream);
    }
    this.markScreen(!!this.session.screenTrack);
    btn.focus();
  }

  markScreen(on) {
    const btn = this.$('#btn-screen');
    if (!btn) return;
    btn.classList.toggle('active', on);
    btn.setAttribute('aria-pressed', String(on));
    relabel(btn, { 'aria-label': on ? 'call.stopShare' : 'call.shareScreen' });
  }

  async toggleDevices() {
    const panel = this.$('#device-panel');
    panel.hidden = !panel.hidden;
    this.$('#btn-devices').setAttribute('aria-expanded', String(!panel.hidden));
    if (panel.hidden) return;
    const { cameras, microphones } = await listDevices();
    const saved = savedDevices();
    const v = this.session.local.videoTrack;
    const a = this.session.local.audioTrack;
    fillDeviceSelect(this.$('#call-camera'), cameras, (v && v.getSettings().deviceId) || saved.cameraId, t('join.deviceCheck.camera'));
    fillDeviceSelect(this.$('#call-microphone'), microphones, (a && a.getSettings().deviceId) || saved.microphoneId, t('join.deviceCheck.microphone'));
    this.$('#call-camera').focus();
  }

  async switchDevice(kind, deviceId) {
    const saved = savedDevices();
    if (kind === 'video') saved.cameraId = deviceId; else saved.microphoneId = deviceId;
    saveDevices(saved);
    if (kind === 'video' && this.session.cameraOff) return;
    const { stream } = await acquireMedia(kind === 'video'
      ? { cameraId: deviceId, wantAudio: false } : { microphoneId: deviceId, wantVideo: false });
    const track = stream && (kind === 'video' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0]);
    if (!track) return;
    await this.session.switchDevice(kind, track);
    this.renderSelf();
  }

  destroy() {
    this.quality.stop();
    this.recording.destroy();
    this.offLang();
    for (const el of this.audioEls.values()) el.srcObject = null;
    for (const rec of this.tileMap.values()) rec.video.srcObject = null;
    this.root.remove();
  }
}
