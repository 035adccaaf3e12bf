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
import { wireE2ee } from '../e2ee/e2ee-view.js';
import { reportFirstFrames } from './first-frame.js';
import { confirmAction } from '../confirm.js';
import { formatElapsed } from './elapsed.js';
import { ChatPanel } from './chat.js';
import { AudioMeter } from './audio-meter.js';
import { wireBandwidth } from './bandwidth.js';
import { wireAudioOnly } from './audio-only.js';
import { qualityText, wireNetworkQuality } from './network-quality.js';


// `pressed`: a toggle (mic, camera, screen) carries aria-pressed ("true" = muted / off / sharing).
function controlButton(id, iconName, shortKey, ariaKey, extraClass = '', pressed = null) {
  const attrs = { id, type: 'button', class: `control ${extraClass}`.trim(), 'i18n-aria-label': ariaKey };
  if (pressed !== null) attrs['aria-pressed'] = pressed;
  return h('button', attrs,
    icon(iconName), h('span', { class: 'control-label', i18n: shortKey }));
}

function chatButton() {
  const btn = controlButton('btn-chat', 'chat', 'call.chatShort', 'call.chat');
  btn.setAttribute('aria-expanded', 'false');
  btn.append(h('span', { class: 'chat-unread count', hidden: true, 'aria-hidden': 'true' }));
  return btn;
}

export function buildCallMarkup(isHost) {
  const root = h('section', { id: 'call', class: 'call', 'aria-labelledby': 'call-heading' },
    h('h1', { id: 'call-heading', class: 'visually-hidden', i18n: 'call.region' }),
    h('div', { class: 'call-status' },
      h('span', { id: 'quality', class: 'quality', 'data-quality': 'unknown', role: 'status' },
        h('span', { class: 'quality-dot', 'aria-hidden': 'true' }),
        h('span', { id: 'quality-text', i18n: 'call.quality.unknown' })),
      h('span', { id: 'call-timer', class: 'call-timer', 'i18n-aria-label': 'call.timer', role: 'timer', text: '0:00' }),
      h('span', { id: 'recording-indicator', class: 'rec', hidden: true },
        h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), h('span', { i18n: 'call.recording' }))),
    h('div', { id: 'reconnecting-banner', class: 'banner', hidden: true, role: 'alert' },
      h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', { i18n: 'call.reconnecting' })),
    isHost ? null : h('div', { id: 'host-away', class: 'banner', hidden: true, role: 'status' },
      h('span', { i18n: 'call.hostAway' })),
    h('div', { id: 'consent-prompt', class: 'consent card', hidden: true, role: 'dialog', 'aria-labelledby': 'consent-title' },
      h('h2', { id: 'consent-title', i18n: 'call.consent.title' }),
      h('p', { id: 'consent-text' }),
      h('div', { class: 'row' },
        h('button', { id: 'consent-yes', type: 'button', i18n: 'call.consent.yes' }),
        h('button', { id: 'consent-no', type: 'button', class: 'secondary', i18n: 'call.consent.no' }))),
    h('button', { id: 'enable-sound', type: 'button', class: 'enable-sound', hidden: true, i18n: 'call.enableSound' }),
    h('div', { id: 'tiles', class: 'tiles' }),
    h('div', { id: 'device-panel', class: 'device-panel card', hidden: true, role: 'region', 'aria-labelledby': 'device-title' },
      h('h2', { id: 'device-title', i18n: 'call.deviceCheck.title' }),
      h('p', { id: 'device-missing', class: 'notice error', hidden: true, role: 'alert' }),
      h('div', { class: 'field' }, h('label', { for: 'call-camera', i18n: 'join.deviceCheck.camera' }), h('select', { id: 'call-camera' })),
      h('div', { class: 'field' }, h('label', { for: 'call-microphone', i18n: 'join.deviceCheck.microphone' }), h('select', { id: 'call-microphone' })),
      h('div', { class: 'field' }, h('label', { for: 'call-level', i18n: 'join.deviceCheck.level' }),
        h('meter', { id: 'call-level', min: '0', max: '1', low: '0.25', high: '0.85', optimum: '0.5', value: '0' })),
      h('button', { id: 'device-done', type: 'button', class: 'secondary', i18n: 'call.deviceCheck.done' })),
    h('div', { class: 'controls', role: 'toolbar', 'i18n-aria-label': 'call.controls' },
      isHost ? controlButton('btn-end-all', 'end', 'call.endShort', 'call.endForAll', 'danger') : null,
      controlButton('btn-mic', 'mic', 'call.micShort', 'call.mute', '', 'false'),
      controlButton('btn-cam', 'camera', 'call.cameraShort', 'call.cameraOff', '', 'false'),
      isHost ? controlButton('btn-screen', 'screen', 'call.screenShort', 'call.shareScreen', '', 'false') : null,
      controlButton('btn-devices', 'settings', 'call.devicesShort', 'call.devices'),
      chatButton(),
      controlButton('btn-hangup', 'hangup', 'call.leaveShort', 'call.hangUp', 'danger')),
    h('button', { id: 'consent-withdraw', type: 'button', class: 'secondary', hidden: true, i18n: 'call.consent.withdraw' }));
  applyI18n(root);
  return root;
}

export class CallView {
  // `checkDevices`: open the device check (preview in the self tile, pickers, microphone level)
  // at once, until someone else is in the call; `mediaError`: why the camera or microphone is
  // missing ('denied' or 'nodevice'), said in it.
  constructor(session, container, { isHost, onLeave, onEndAll, checkDevices = false, mediaError = null }) {
    this.session = session;
    this.mediaError = mediaError;
    this.isHost = isHost;
    this.onLeave = onLeave;
    this.onEndAll = onEndAll;
    this.root = buildCallMarkup(isHost);
    container.replaceChildren(this.root);
    this.tiles = this.root.querySelector('#tiles');
    this.tileMap = new Map(); // key `${pid}:${camera|screen}` -> tile record
    this.audioEls = new Map();
    this.quality = new QualityMonitor(() => session.pc, (s) => this.showQuality(s));
    this.meter = new AudioMeter(this.root.querySelector('#call-level'));
    this.bindControls();
    this.recording = wireRecording(session, this.root, { isHost });
    this.chat = new ChatPanel(session, this.root);
    this.e2ee = wireE2ee(session, this.root, { isHost });
    this.bandwidth = wireBandwidth(session);
    this.audioOnly = wireAudioOnly(session, this.root);
    this.network = wireNetworkQuality(session, this);
    reportFirstFrames(session);
    this.renderSelf();
    session.addEventListener('participants', () => this.renderParticipants());
    session.addEventListener('track', (e) => this.attachTrack(e.detail));
    session.addEventListener('track-unpublished', (e) => this.onUnpublished(e.detail));
    session.addEventListener('state', (e) => this.onState(e.detail));
    session.addEventListener('notice', (e) => announce(t(e.detail.key, e.detail.vars)));
    this.offLang = onLanguageChange(() => this.renderParticipants());
    this.onState(session.state);
    this.autoCheck = checkDevices;
    if (checkDevices) this.toggleDevices();
  }

  $(sel) { return this.root.querySelector(sel); }

  bindControls() {
    this.$('#btn-mic').addEventListener('click', () => this.toggleMic());
    this.$('#btn-cam').addEventListener('click', () => this.toggleCamera());
    const screen = this.$('#btn-screen');
    if (screen) screen.addEventListener('click', () => this.toggleScreen());
    this.$('#btn-devices').addEventListener('click', () => this.toggleDevices());
    this.$('#device-done').addEventListener('click', () => { if (!this.$('#device-panel').hidden) this.toggleDevices(); });
    this.$('#btn-hangup').addEventListener('click', async () => {
      if (await confirmAction({ titleKey: 'call.confirmLeave.title', textKey: this.isHost ? 'call.confirmLeave.hostText' : 'call.confirmLeave.text', confirmKey: 'call.confirmLeave.ok' })) this.onLeave();
    });
    const endAll = this.$('#btn-end-all');
    if (endAll) {
      endAll.addEventListener('click', async () => {
        if (await confirmAction({ titleKey: 'call.confirmEnd.title', textKey: 'call.confirmEnd.text', confirmKey: 'call.confirmEnd.ok', danger: true })) this.onEndAll();
      });
    }
    this.$('#call-camera').addEventListener('change', (e) => this.switchDevice('video', e.target.value));
    this.$('#call-microphone').addEventListener('change', (e) => this.switchDevice('audio', e.target.value));
    this.$('#enable-sound').addEventListener('click', () => this.enableSound());
  }

  onState(state) {
    this.$('#reconnecting-banner').hidden = state !== 'reconnecting';
    if (state === 'in-call' && !this.callStart) {
      this.callStart = Date.now();
      this.timer = window.setInterval(() => this.tick(), 1000);
    }
    this.renderHostAway();
    if (state === 'in-call') this.quality.start();
    else if (state !== 'reconnecting') this.quality.stop();
  }

  tick() { this.$('#call-timer').textContent = formatElapsed(Date.now() - this.callStart); }

  // The patient's side: "the doctor stepped out, please wait" while no host is in the call.
  renderHostAway() {
    const away = this.$('#host-away');
    if (!away) return;
    const hostHere = [...this.session.participants.values()].some((p) => p.role === 'host' || p.role === 'doctor');
    const show = this.session.state === 'in-call' && !hostHere;
    if (show && away.hidden) announce(t('call.hostAway'));
    away.hidden = !show;
  }

  showQuality(sample) {
    const { lossPct, rttMs, kbpsIn, quality } = sample;
    const el = this.$('#quality');
    el.dataset.quality = quality;
    const text = this.$('#quality-text');
    if (quality === 'unknown' || lossPct == null) { relabel(text, { text: `call.quality.${quality}` }); return; }
    // Detail string built from dictionary parts.
    text.removeAttribute('data-i18n');
    text.textContent = qualityText(sample);
    el.dataset.loss = String(lossPct);
    el.dataset.rtt = String(rttMs);
    el.dataset.kbps = String(kbpsIn);
    this.network.report(sample);
  }

  // -- tiles -----------------------------------------------------------------------------

  makeTile(key, { self = false, screen = false } = {}) {
    const video = h('video', { autoplay: true, playsinline: true, muted: true, class: self ? 'mirror' : '' });
    video.muted = true; // sound plays through a separate <audio> element
    const name = h('span', { class: 'tile-name' });
    const micOff = h('span', { class: 'badge mic-off', hidden: true, 'i18n-title': 'call.muted' }, icon('mic', true), h('span', { class: 'visually-hidden', i18n: 'call.muted' }));
    const camOff = h('div', { class: 'cam-off', hidden: true }, h('span', { class: 'avatar', 'aria-hidden': 'true' }), h('span', { i18n: 'call.cameraIsOff' }));
    const away = h('div', { class: 'tile-reconnecting', hidden: true, role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', { i18n: 'call.participantReconnecting' }));
    const caption = h('div', { class: 'tile-caption' }, name, micOff);
    const tile = h('figure', { class: `tile${self ? ' self' : ''}${screen ? ' screen' : ''}`, 'data-key': key }, video, camOff, away, caption);
    const record = { tile, video, name, micOff, camOff, away, stream: new MediaStream(), removeBtn: null, enlargeBtn: null };
    if (!self) tile.append(this.tileTools(record));
    applyI18n(tile);
    video.srcObject = record.stream;
    this.tileMap.set(key, record);
    if (self) this.tiles.append(tile); else this.tiles.insertBefore(tile, this.tiles.querySelector('.tile.self'));
    return record;
  }

  // Enlarge (the tile fills the window, and the screen when the browser allows it) and
  // picture-in-picture (where the browser has it), on every tile but the self view.
  tileTools(record) {
    const enlarge = h('button', { type: 'button', class: 'tile-tool tile-enlarge', 'aria-pressed': 'false', 'i18n-aria-label': 'call.enlarge', 'i18n-title': 'call.enlarge' }, icon('enlarge'));
    enlarge.addEventListener('click', () => this.setEnlarged(record, !record.tile.classList.contains('enlarged')));
    record.enlargeBtn = enlarge;
    const tools = h('div', { class: 'tile-tools' }, enlarge);
    if (document.pictureInPictureEnabled && typeof record.video.requestPictureInPicture === 'function') {
      const pip = h('button', { type: 'button', class: 'tile-tool tile-pip', 'aria-pressed': 'false', 'i18n-aria-label': 'call.pip', 'i18n-title': 'call.pip' }, icon('pip'));
      pip.addEventListener('click', () => this.togglePip(record, pip));
      record.video.addEventListener('leavepictureinpicture', () => pip.setAttribute('aria-pressed', 'false'));
      record.video.addEventListener('enterpictureinpicture', () => pip.setAttribute('aria-pressed', 'true'));
      tools.append(pip);
    }
    return tools;
  }

  setEnlarged(record, on) {
    for (const other of this.tileMap.values()) {
      if (other !== record && other.tile.classList.contains('enlarged')) this.setEnlarged(other, false);
    }
    record.tile.classList.toggle('enlarged', on);
    this.root.classList.toggle('has-enlarged', on);
    record.enlargeBtn.setAttribute('aria-pressed', String(on));
    relabel(record.enlargeBtn, { 'aria-label': on ? 'call.shrink' : 'call.enlarge', title: on ? 'call.shrink' : 'call.enlarge' });
    if (on && record.tile.requestFullscreen && !document.fullscreenElement) {
      record.tile.requestFullscreen().catch(() => {}); // the in-window enlargement stays either way
      const onExit = () => {
        if (document.fullscreenElement) return;
        document.removeEventListener('fullscreenchange', onExit);
        if (record.tile.classList.contains('enlarged')) this.setEnlarged(record, false);
      };
      document.addEventListener('fullscreenchange', onExit);
    } else if (!on && document.fullscreenElement === record.tile) {
      document.exitFullscreen().catch(() => {});
    }
    record.enlargeBtn.focus();
  }

  async togglePip(record, btn) {
    try {
      if (document.pictureInPictureElement === record.video) await document.exitPictureInPicture();
      else await record.video.requestPictureInPicture();
    } catch {
      announce(t('call.pipFailed'));
    }
    btn.setAttribute('aria-pressed', String(document.pictureInPictureElement === record.video));
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
    if (rec.tile.classList.contains('enlarged')) this.setEnlarged(rec, false);
    rec.tile.remove();
    this.tileMap.delete(key);
  }

  renderParticipants() {
    const present = this.session.participants;
    // The device check opened on arrival closes once someone else is in the call.
    if (this.autoCheck && present.size > 0 && !this.$('#device-panel').hidden) this.toggleDevices();
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
        // The server says this participant's media is away (a network change): "reconnecting…".
        rec.tile.dataset.connection = p.reconnecting ? 'reconnecting' : 'ok';
        rec.away.hidden = !p.reconnecting;
        if (rec.removeBtn) relabel(rec.removeBtn, { 'aria-label': 'call.remove' }, { name });
      }
      rec.video.setAttribute('aria-label', rec.name.textContent);
    }
    this.renderSelf();
    this.renderHostAway();
  }

  // -- controls --------------------------------------------------------------------------

  toggleMic() {
    const muted = !this.session.micMuted;
    this.session.setMicMuted(muted);
    const btn = this.$('#btn-mic');
    btn.classList.toggle('off', muted);
    btn.setAttribute('aria-pressed', String(muted));
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
    btn.setAttribute('aria-pressed', String(off));
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
    if (panel.hidden) {
      this.autoCheck = false;
      this.meter.detach();
      if (panel.contains(document.activeElement)) this.$('#btn-devices').focus(); // keep the keyboard's place
      return;
    }
    this.meter.attach(this.session.local.stream);
    this.renderMissing();
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
    if (kind === 'audio' && !this.$('#device-panel').hidden) this.meter.attach(this.session.local.stream);
    this.renderMissing();
  }

  // In the device check: what is missing (no camera, no microphone, or access refused).
  renderMissing() {
    const el = this.$('#device-missing');
    const local = this.session.local;
    const key = this.mediaError === 'denied' && !(local.videoTrack && local.audioTrack) ? 'call.deviceCheck.denied'
      : !local.videoTrack && !local.audioTrack ? 'call.deviceCheck.none'
        : !local.videoTrack ? 'call.deviceCheck.noCamera' : !local.audioTrack ? 'call.deviceCheck.noMicrophone' : null;
    el.hidden = !key;
    if (key) relabel(el, { text: key });
  }

  destroy() {
    window.clearInterval(this.timer);
    this.meter.close();
    this.chat.destroy();
    this.quality.stop();
    this.recording.destroy();
    this.e2ee.destroy();
    this.bandwidth.destroy();
    this.audioOnly.destroy();
    this.network.destroy();
    this.offLang();
    for (const el of this.audioEls.values()) el.srcObject = null;
    for (const rec of this.tileMap.values()) rec.video.srcObject = null;
    this.root.remove();
  }
}
