// Patient / guest page (/join#<token>): device check, name, waiting room, call, end screen.
// The token lives only in the fragment; it is removed from the address bar at once and only
// ever travels in the POST /api/join body.

import { ApiError, api } from '../http.js';
import { initI18n, t } from '../i18n.js';
import { announce } from '../live.js';
import { CallSession } from '../call/call-session.js';
import { CallView } from '../call/call-view.js';
import { acquireMedia } from '../call/local-media.js';
import { DeviceCheck } from './device-check.js';

const inviteToken = location.hash.length > 1 ? decodeURIComponent(location.hash.slice(1)) : '';
if (location.hash) history.replaceState(null, '', location.pathname);

const SCREENS = ['loading', 'link-error', 'device-check', 'waiting', 'reconnecting', 'call', 'end'];
const END_TEXT = {
  ended: 'join.ended', denied: 'join.denied', removed: 'join.removed', left: 'join.left', replaced: 'join.replaced',
};

// The last end screen, kept for this tab only, so a reload after "removed" or "not admitted"
// shows the same screen again (the participant session is gone by then: GET /api/participant 401).
const END_KEY = 'tc_end';

const app = { state: 'loading', session: null, view: null, deviceCheck: null, consultationId: null };

Object.defineProperty(window, 'teleconsult', {
  value: Object.freeze({
    get pc() { return app.session ? app.session.pc : null; },
    get state() { return app.state; },
    get participantId() { return app.session ? app.session.selfId : null; },
    get micLevel() { return app.deviceCheck ? app.deviceCheck.meter.peak : 0; },
    get participants() { return app.session ? [...app.session.participants.values()].map((p) => ({ ...p })) : []; },
  }),
});

function $(id) { return document.getElementById(id); }

function show(screen, state = screen) {
  for (const name of SCREENS) $(`screen-${name}`).hidden = name !== screen;
  app.state = state;
  document.body.dataset.state = state;
}

function showLinkError(code) {
  const key = code === 'invite_used' ? 'join.linkError.used' : code === 'missing' ? 'join.linkError.missing' : 'join.linkError.invalid';
  const text = $('link-error-text');
  text.dataset.i18n = key;
  text.textContent = t(key);
  show('link-error');
  $('main').focus();
}

function showEnd(kind) {
  const base = END_TEXT[kind] || 'join.ended';
  $('end-title').dataset.i18n = `${base}.title`;
  $('end-title').textContent = t(`${base}.title`);
  $('end-text').dataset.i18n = `${base}.text`;
  $('end-text').textContent = t(`${base}.text`);
  if (app.view) { app.view.destroy(); app.view = null; }
  if (app.deviceCheck) app.deviceCheck.stop();
  if (kind !== 'replaced') {
    try { sessionStorage.setItem(END_KEY, END_TEXT[kind] ? kind : 'ended'); } catch { /* ignore */ }
  }
  show('end', kind === 'ended' ? 'ended' : kind);
  if (kind === 'ended') announce(t('live.ended'));
  $('main').focus();
}

function startSession(consultationId, localMedia) {
  const session = new CallSession({ consultationId, localMedia });
  app.session = session;
  session.addEventListener('state', (e) => onSessionState(e.detail));
  session.addEventListener('message', (e) => onOtherMessage(e.detail));
  session.connect();
}

function onSessionState(state) {
  const session = app.session;
  if (state === 'waiting') {
    const preview = $('waiting-preview');
    preview.srcObject = session.local.stream || null;
    show('waiting');
    announce(t('live.waiting'));
  } else if (state === 'in-call') {
    if (!app.view) {
      app.view = new CallView(session, $('screen-call'), { isHost: false, onLeave: leave, onEndAll: () => {} });
    }
    $('waiting-preview').srcObject = null;
    show('call', 'in-call');
    announce(t('live.inCall'));
  } else if (state === 'reconnecting') {
    app.state = 'reconnecting';
    document.body.dataset.state = 'reconnecting';
    if (!app.view) show('reconnecting');
  } else if (END_TEXT[state]) {
    showEnd(state);
  }
}

function onOtherMessage(msg) {
  // recording-ui hooks are wired by the recording feature (consent-prompt, recording-state).
  document.dispatchEvent(new CustomEvent('teleconsult:message', { detail: msg }));
}

async function leave() {
  if (app.session) app.session.leave();
  try { await api('POST', '/api/participant/leave'); } catch { /* the session may be gone */ }
}

async function submitJoin(event) {
  event.preventDefault();
  const nameInput = $('display-name');
  const name = nameInput.value.trim();
  $('name-error').hidden = !!name;
  nameInput.setAttribute('aria-invalid', String(!name));
  if (!name) { nameInput.focus(); return; }
  const button = $('join-submit');
  button.disabled = true;
  $('join-error').hidden = true;
  const dc = app.deviceCheck;
  dc.meter.resume();
  try {
    const joined = await api('POST', '/api/join', { token: inviteToken, display_name: name, device_check: dc.result() });
    app.consultationId = joined.consultation_id;
    dc.saveChoice();
    dc.stopMeter();
    startSession(joined.consultation_id, dc.localMedia());
  } catch (err) {
    button.disabled = false;
    if (err instanceof ApiError && (err.code === 'invite_used' || err.code === 'invite_invalid')) {
      dc.stop();
      showLinkError(err.code);
      return;
    }
    const msg = $('join-error');
    msg.textContent = t('common.error');
    msg.hidden = false;
  }
}

async function rejoin(participant) {
  if (END_TEXT[participant.state] || participant.state === 'ended') { showEnd(participant.state); return; }
  try { sessionStorage.removeItem(END_KEY); } catch { /* ignore */ }
  show('reconnecting');
  const { stream } = await acquireMedia(JSON.parse(sessionStorage.getItem('tc_devices') || '{}'));
  const localMedia = {
    stream: stream || new MediaStream(),
    audioTrack: stream ? stream.getAudioTracks()[0] || null : null,
    videoTrack: stream ? stream.getVideoTracks()[0] || null : null,
  };
  startSession(participant.consultation_id, localMedia);
}

async function main() {
  await initI18n();
  if (inviteToken) {
    try { sessionStorage.removeItem(END_KEY); } catch { /* ignore */ }
    show('device-check');
    app.deviceCheck = new DeviceCheck();
    $('join-form').addEventListener('submit', submitJoin);
    await app.deviceCheck.start();
    $('display-name').focus();
    return;
  }
  try {
    const participant = await api('GET', '/api/participant');
    await rejoin(participant);
  } catch {
    let ended = null;
    try { ended = sessionStorage.getItem(END_KEY); } catch { /* ignore */ }
    if (ended && END_TEXT[ended]) showEnd(ended); else showLinkError('missing');
  }
}

main();
