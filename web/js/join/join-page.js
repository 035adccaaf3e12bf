// Patient / guest page (/join#<token>[.<B64(s)>.<p>]): device check, name, waiting room, call,
// end screen. The token lives only in the fragment; it is removed from the address bar at once
// and only ever travels in the POST /api/join body. The E2EE link secret s and policy letter p
// (docs/e2ee.md) never leave the browser; they are kept for this tab (sessionStorage) so a
// reload still verifies the doctor's key.

import { ApiError, api } from '../http.js';
import { initI18n, t } from '../i18n.js';
import { announce } from '../live.js';
import { CallSession } from '../call/call-session.js';
import { CallView } from '../call/call-view.js';
import { acquireMedia } from '../call/local-media.js';
import { DeviceCheck } from './device-check.js';
import { parseFragment } from '../e2ee/link-secret.js';
import { e2eeSupported } from '../e2ee/media-transforms.js';
import { b64decode, b64encode } from '../e2ee/encoding.js';

const fragment = parseFragment(location.hash.length > 1 ? location.hash.slice(1) : '');
const inviteToken = fragment.token;
if (location.hash) history.replaceState(null, '', location.pathname);
const LINK_KEY = 'tc_e2ee_link';

const SCREENS = ['loading', 'link-error', 'device-check', 'waiting', 'reconnecting', 'call', 'end'];
const END_TEXT = {
  ended: 'join.ended', denied: 'join.denied', removed: 'join.removed', moved: 'join.moved', left: 'join.left', replaced: 'join.replaced',
  'e2ee-unsupported': 'join.e2eeUnsupported', 'e2ee-downgraded': 'join.e2eeDowngraded', 'e2ee-refused': 'join.e2eeRefused',
};

// The last end screen, kept for this tab only, so a reload after "removed" or "not admitted"
// shows the same screen again (the participant session is gone by then: GET /api/participant 401).
const END_KEY = 'tc_end';

const app = { state: 'loading', session: null, view: null, deviceCheck: null, consultationId: null, context: null };

Object.defineProperty(window, 'teleconsult', {
  value: Object.freeze({
    get pc() { return app.session ? app.session.pc : null; },
    get state() { return app.state; },
    get participantId() { return app.session ? app.session.selfId : null; },
    get micLevel() { return app.deviceCheck ? app.deviceCheck.meter.peak : 0; },
    get participants() { return app.session ? [...app.session.participants.values()].map((p) => ({ ...p })) : []; },
    get e2ee() { return app.session ? app.session.e2ee.status() : null; },
    e2eeFrameStats: () => (app.session ? app.session.e2ee.frameStats() : Promise.resolve(null)),
  }),
});

function $(id) { return document.getElementById(id); }

function show(screen, state = screen) {
  for (const name of SCREENS) $(`screen-${name}`).hidden = name !== screen;
  app.state = state;
  document.body.dataset.state = state;
}

// The doctor's name and the appointment label, shown while waiting (GET /api/participant and
// POST /api/join/check give them).
function showContext(ctx) {
  if (ctx) app.context = { doctor_name: ctx.doctor_name || '', label: ctx.label || '' };
  const c = app.context;
  const box = $('waiting-context');
  if (!c || (!c.doctor_name && !c.label)) { box.hidden = true; return; }
  $('waiting-doctor').textContent = c.doctor_name ? t('join.waiting.doctor', { name: c.doctor_name }) : '';
  $('waiting-doctor').hidden = !c.doctor_name;
  $('waiting-label').textContent = c.label;
  $('waiting-label').hidden = !c.label;
  box.hidden = false;
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
  if (kind !== 'replaced' && !kind.startsWith('e2ee-')) {
    try { sessionStorage.setItem(END_KEY, END_TEXT[kind] ? kind : 'ended'); } catch { /* ignore */ }
  }
  show('end', kind === 'ended' ? 'ended' : kind);
  $('end-rejoin').hidden = kind !== 'left';
  $('end-forget').hidden = kind !== 'left';
  if (kind === 'ended') announce(t('live.ended'));
  $('main').focus();
}

// The link's secret for this consultation: from the fragment, else kept for this tab.
function linkE2ee(consultationId) {
  if (fragment.secret) {
    try { sessionStorage.setItem(LINK_KEY, JSON.stringify({ cid: consultationId, s: b64encode(fragment.secret), p: fragment.policy })); } catch { /* ignore */ }
    return { secret: fragment.secret, linkPolicy: fragment.policy };
  }
  try {
    const kept = JSON.parse(sessionStorage.getItem(LINK_KEY) || 'null');
    if (kept && kept.cid === consultationId) return { secret: b64decode(kept.s, 16), linkPolicy: kept.p || null };
  } catch { /* ignore */ }
  return { secret: null, linkPolicy: null };
}

function startSession(consultationId, localMedia) {
  const session = new CallSession({ consultationId, localMedia, e2ee: linkE2ee(consultationId) });
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
    showContext(null);
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
  if (msg.type === 'lobby-note') {
    const note = $('waiting-note');
    note.textContent = typeof msg.text === 'string' ? msg.text : '';
    note.hidden = !note.textContent;
    if (note.textContent) announce(t('join.waiting.note', { text: note.textContent }));
    return;
  }
  // recording-ui hooks are wired by the recording feature (consent-prompt, recording-state).
  document.dispatchEvent(new CustomEvent('teleconsult:message', { detail: msg }));
}

// Leaving closes this device's connection only: the participant session stays, so "Rejoin"
// (or the same link, or a reload) brings the patient back until the consultation ends or the
// doctor removes them (docs/api.md "Leaving and rejoining").
function leave() {
  if (app.session) app.session.leave();
}

// On a shared computer: end the participant session here, so nobody can come back on it.
async function forgetSession() {
  try { await api('POST', '/api/participant/leave'); } catch { /* already over */ }
  try { sessionStorage.setItem(END_KEY, 'ended'); } catch { /* ignore */ }
  showEnd('ended');
}

async function rejoinAfterLeave() {
  $('end-rejoin').disabled = true;
  try {
    const participant = await api('GET', '/api/participant');
    if (app.session) app.session = null;
    await rejoin(participant);
  } catch {
    showEnd('ended');
  } finally {
    $('end-rejoin').disabled = false;
  }
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
    await dc.settled(); // the camera may still be opening: join with it, not without it
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
  showContext(participant);
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
  $('end-rejoin').addEventListener('click', rejoinAfterLeave);
  $('end-forget').addEventListener('click', forgetSession);
  if (inviteToken) {
    try { sessionStorage.removeItem(END_KEY); } catch { /* ignore */ }
    if (fragment.policy === 'required' && !e2eeSupported()) {
      // Before the device check: this browser cannot take part in an end-to-end encrypted call.
      showEnd('e2ee-unsupported');
      return;
    }
    // Before any device check or camera prompt: is this link still good here? (read-only:
    // nothing is consumed; a used link on the device that redeemed it leads back in).
    let checked;
    try {
      checked = await api('POST', '/api/join/check', { token: inviteToken });
    } catch (err) {
      showLinkError(err instanceof ApiError ? err.code : 'invite_invalid');
      return;
    }
    showContext(checked);
    if (checked.status === 'rejoin') {
      try { await rejoin(await api('GET', '/api/participant')); return; } catch { showLinkError('invite_used'); return; }
    }
    show('device-check');
    app.deviceCheck = new DeviceCheck();
    $('join-form').addEventListener('submit', submitJoin);
    await app.deviceCheck.start();
    $('display-name').focus();
    return;
  }
  try {
    const participant = await api('GET', '/api/participant');
    let ended = null;
    try { ended = sessionStorage.getItem(END_KEY); } catch { /* ignore */ }
    if (ended === 'left') { showContext(participant); showEnd('left'); return; }
    await rejoin(participant);
  } catch {
    let ended = null;
    try { ended = sessionStorage.getItem(END_KEY); } catch { /* ignore */ }
    if (ended && END_TEXT[ended]) showEnd(ended); else showLinkError('missing');
  }
}

main();
