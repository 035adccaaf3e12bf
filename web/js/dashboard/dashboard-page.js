// Doctor dashboard (/): consultations today and upcoming, new consultation, patient links
// (copy, QR when the server gives one, revoke, reissue), the waiting room (admit / deny, with a
// beep and a visual cue), and the call. Requires a staff session: a 401 goes to /login.

import { ApiError, api, setCsrfToken } from '../http.js';
import { initI18n, lang, onLanguageChange, t } from '../i18n.js';
import { announce } from '../live.js';
import { h, applyI18n } from '../dom.js';
import { CallSession } from '../call/call-session.js';
import { CallView } from '../call/call-view.js';
import { acquireMedia, savedDevices } from '../call/local-media.js';
import { beep } from './beep.js';
import { IdleGuard } from './idle.js';
import { RecordingsPanel } from './recordings.js';
import { secureLink } from '../e2ee/link-secret.js';
import { leaveNothingBehind } from '../auth/leaving.js';
import { DashboardFeed, askNotifications, notifyArrival } from './live-feed.js';
import { confirmAction } from '../confirm.js';
import { trackTopbarHeight } from '../topbar-height.js';

const app = { me: null, state: 'loading', current: null, session: null, view: null, lobby: [], seen: new Set(), idle: null, consultations: [], recordings: null, feed: null, status: new Map(), feedSeen: new Set() };

Object.defineProperty(window, 'teleconsult', {
  value: Object.freeze({
    get pc() { return app.session ? app.session.pc : null; },
    get state() { return app.state; },
    get consultationId() { return app.current ? app.current.id : null; },
    get lobby() { return app.lobby.map((p) => ({ ...p })); },
    get participants() { return app.session ? [...app.session.participants.values()].map((p) => ({ ...p })) : []; },
    get beeps() { return window.teleconsultBeeps || 0; },
    get feedConnected() { return !!app.feed && app.feed.connected; },
    get status() { return Object.fromEntries([...app.status].map(([k, v]) => [k, { ...v }])); },
    get e2ee() { return app.session ? app.session.e2ee.status() : null; },
    e2eeFrameStats: () => (app.session ? app.session.e2ee.frameStats() : Promise.resolve(null)),
  }),
});

function $(id) { return document.getElementById(id); }

function fmtTime(epochS) {
  if (!epochS) return t('dash.unscheduled');
  return new Date(epochS * 1000).toLocaleString(lang() === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

// An unlabelled consultation is titled by its time ("Consultation, 1 Dec 2026, 14:00"), not "—".
function titleOf(c) { return c.label || t('dash.untitled', { time: fmtTime(c.scheduled_at || c.created_at) }); }

function goLogin() { location.replace('/login'); }

async function guarded(fn) {
  try { return await fn(); } catch (err) {
    if (err instanceof ApiError && err.status === 401) { goLogin(); return undefined; }
    throw err;
  }
}

// -- list ---------------------------------------------------------------------------------

async function showList() {
  app.current = null;
  app.lobby = [];
  history.replaceState(null, '', '/');
  app.state = 'list';
  document.body.dataset.state = 'list';
  $('view-consultation').hidden = true;
  $('view-list').hidden = false;
  try {
    app.consultations = await guarded(() => api('GET', '/api/consultations')) || [];
    $('list-error').hidden = true;
  } catch {
    $('list-error').hidden = false;
    app.consultations = [];
  }
  renderList();
  updateTitle();
  if (app.recordings) await app.recordings.refresh();
}

function renderList() {
  const today = [];
  const upcoming = [];
  const endOfDay = new Date();
  endOfDay.setHours(23, 59, 59, 999);
  const startOfDay = new Date();
  startOfDay.setHours(0, 0, 0, 0);
  for (const c of app.consultations) {
    const when = (c.scheduled_at || c.created_at) * 1000;
    if (when > endOfDay.getTime()) upcoming.push(c);
    else if (when >= startOfDay.getTime() || c.state === 'open' || c.state === 'scheduled') today.push(c);
  }
  const by = (a, b) => (a.scheduled_at || a.created_at) - (b.scheduled_at || b.created_at);
  fillList($('list-today'), today.sort(by));
  fillList($('list-upcoming'), upcoming.sort(by));
}

function fillList(ul, items) {
  ul.replaceChildren();
  if (!items.length) { ul.append(h('li', { class: 'empty', i18n: 'dash.none' })); applyI18n(ul); return; }
  for (const c of items) {
    const live = c.state === 'open' || c.state === 'scheduled';
    ul.append(h('li', { 'data-consultation-id': c.id },
      h('span', { class: 'c-label', text: titleOf(c) }),
      h('span', { class: 'muted', text: fmtTime(c.scheduled_at) }),
      h('span', { class: 'state-pill', i18n: `dash.state.${c.state}` }),
      live ? liveStatus(c.id) : null,
      live ? h('button', { type: 'button', class: 'open-consultation', i18n: 'dash.open', onclick: () => openConsultation(c.id) }) : null));
  }
  applyI18n(ul);
}

// Who waits and who is in the call, from the live feed (nothing shown until it speaks).
function liveStatus(cid) {
  const st = app.status.get(cid);
  const box = h('span', { class: 'live-status', 'data-waiting': String(st ? st.waiting.length : 0), 'data-in-call': String(st ? st.in_call.length : 0) });
  if (!st) return box;
  if (st.waiting.length) {
    box.append(h('span', { class: 'live-badge waiting-badge', i18n: 'dash.live.waiting', 'i18n-vars': { count: st.waiting.length, names: st.waiting.map((p) => p.display_name).join(', ') } }));
  }
  if (st.in_call.length) {
    box.append(h('span', { class: 'live-badge in-call-badge', i18n: 'dash.live.inCall', 'i18n-vars': { names: st.in_call.map((p) => p.display_name).join(', ') } }));
  }
  return box;
}

function totalWaiting() {
  let n = 0;
  for (const [cid, st] of app.status) if (!app.current || cid !== app.current.id) n += st.waiting.length;
  return n + (app.current ? app.lobby.length : 0);
}

function updateTitle() {
  const n = totalWaiting();
  document.title = n ? `(${n}) ${t('dash.title')}` : t('dash.title');
}

function onFeedStatus(st) {
  if (st.state !== 'open' && st.state !== 'scheduled') app.status.delete(st.consultation_id);
  else app.status.set(st.consultation_id, st);
  const arrived = st.waiting.filter((p) => !app.feedSeen.has(p.participant_id));
  for (const p of st.waiting) app.feedSeen.add(p.participant_id);
  const here = app.current && app.current.id === st.consultation_id; // setLobby cues that one
  if (arrived.length && !here) {
    beep();
    const c = app.consultations.find((x) => x.id === st.consultation_id);
    for (const p of arrived) {
      announce(t('live.arrived', { name: p.display_name }));
      notifyArrival(t('dash.notify.title'), t('dash.notify.body', { name: p.display_name, label: (c && c.label) || '' }));
    }
  }
  if (!$('view-list').hidden) renderList();
  updateTitle();
}

function setupNotifyButton() {
  const btn = $('notify-allow');
  const refresh = () => { btn.hidden = !('Notification' in window) || Notification.permission !== 'default'; };
  refresh();
  btn.addEventListener('click', async () => { await askNotifications(); refresh(); });
}

async function createConsultation(event) {
  event.preventDefault();
  const body = { label: $('new-label').value.trim() };
  const when = $('new-when').value;
  if (when) body.scheduled_at = Math.floor(new Date(when).getTime() / 1000);
  $('new-error').hidden = true;
  try {
    const c = await guarded(() => api('POST', '/api/consultations', body));
    if (!c) return;
    $('new-label').value = '';
    $('new-when').value = '';
    await openConsultation(c.id);
  } catch (err) {
    $('new-error').textContent = (err && err.message) || t('common.error');
    $('new-error').hidden = false;
  }
}

// -- one consultation ---------------------------------------------------------------------

async function openConsultation(cid) {
  const c = await guarded(() => api('GET', `/api/consultations/${encodeURIComponent(cid)}`));
  if (!c) return;
  app.current = c;
  history.replaceState(null, '', `/#c=${encodeURIComponent(cid)}`);
  $('view-list').hidden = true;
  $('view-consultation').hidden = false;
  $('c-title').textContent = titleOf(c);
  $('link-box').hidden = true;
  $('lobby-note').value = '';
  $('lobby-note-sent').hidden = true;
  app.seen = new Set();
  setLobby(c.waiting || [], false);
  await refreshInvites();
  await startCall(cid);
  // To the consultation, unless the doctor is already in it (the device check, a control).
  if (!$('view-consultation').contains(document.activeElement)) $('main').focus();
}

async function refreshInvites() {
  const cid = app.current.id;
  let invites = [];
  try { invites = await guarded(() => api('GET', `/api/consultations/${encodeURIComponent(cid)}/invites`)) || []; } catch { invites = []; }
  const ul = $('invites');
  ul.replaceChildren();
  for (const inv of invites) {
    const li = h('li', { 'data-invite-id': inv.invite_id },
      h('span', {}, h('span', { i18n: `dash.invite.${inv.state}` }), ' · ', h('span', { class: 'muted', text: t('dash.invite.expires', { time: fmtTime(inv.expires_at) }) })),
      inv.state === 'outstanding' ? h('button', { type: 'button', class: 'secondary revoke', i18n: 'dash.revoke', onclick: () => revokeInvite(inv.invite_id) }) : null);
    ul.append(li);
  }
  applyI18n(ul);
  // The link shown once is no use after it was redeemed (or revoked, or expired): stop offering it.
  const shown = invites.find((i) => i.invite_id === app.shownInviteId);
  if (shown && shown.state !== 'outstanding' && !$('link-box').hidden) {
    $('link-box').hidden = true;
    $('link').value = '';
    app.shownInviteId = null;
  }
  const hasOutstanding = invites.some((i) => i.state === 'outstanding');
  const btn = $('new-link');
  btn.dataset.i18n = hasOutstanding ? 'dash.reissue' : 'dash.newLink';
  btn.textContent = t(btn.dataset.i18n);
}

async function showIssuedLink(cid, issued) {
  // E2EE (docs/e2ee.md): the link carries a secret the server never sees, and the policy letter.
  const policy = (app.session && app.session.e2ee.policy !== 'off' && app.session.e2ee.policy) || app.current.e2ee || 'off';
  $('link').value = policy === 'off' ? issued.link : await secureLink(cid, issued.link, policy);
  const qr = $('link-qr');
  if (issued.qr_svg) {
    qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(issued.qr_svg)}`;
    qr.hidden = false;
  } else {
    qr.hidden = true;
  }
  app.shownInviteId = issued.invite_id;
  $('link-box').hidden = false;
  $('link').focus();
  $('link').select();
  await refreshInvites();
}

async function newLink() {
  const cid = app.current.id;
  try {
    const issued = await guarded(() => api('POST', `/api/consultations/${encodeURIComponent(cid)}/invites`, { role: 'patient' }));
    if (!issued) return;
    await showIssuedLink(cid, issued);
  } catch (err) {
    announce((err && err.message) || t('common.error'));
  }
}

// Moving a patient to another device (phone → laptop): a new one-time link for them; their
// current device leaves the consultation at once (docs/api.md "Moving to another device").
function renderMovable() {
  const ul = $('movable');
  const people = new Map();
  for (const p of app.lobby) people.set(p.participant_id, p.display_name || '');
  if (app.session) {
    for (const [pid, p] of app.session.participants) if (pid !== app.session.selfId && p.role !== 'host') people.set(pid, p.display_name || '');
  }
  ul.replaceChildren();
  for (const [pid, name] of people) {
    ul.append(h('li', { 'data-participant-id': pid },
      h('span', { text: name }),
      h('button', { type: 'button', class: 'secondary move-device', i18n: 'dash.move.button', 'i18n-aria-label': 'dash.move.buttonName', 'i18n-vars': { name }, onclick: () => moveDevice(pid) })));
  }
  applyI18n(ul);
  $('move-box').hidden = people.size === 0;
}

async function moveDevice(pid) {
  if (!(await confirmAction({ titleKey: 'dash.move.confirmTitle', textKey: 'dash.move.confirmText', confirmKey: 'dash.move.confirmOk' }))) return;
  const cid = app.current.id;
  try {
    const issued = await guarded(() => api('POST', `/api/consultations/${encodeURIComponent(cid)}/participants/${encodeURIComponent(pid)}/move`));
    if (!issued) return;
    await showIssuedLink(cid, issued);
  } catch (err) {
    announce((err && err.message) || t('common.error'));
  }
}

async function copyLink() {
  const input = $('link');
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    document.execCommand('copy');
  }
  const btn = $('copy-link');
  btn.dataset.i18n = 'dash.copied';
  btn.textContent = t('dash.copied');
  announce(t('dash.copied'));
  window.setTimeout(() => { btn.dataset.i18n = 'dash.copy'; btn.textContent = t('dash.copy'); }, 2500);
}

async function revokeInvite(inviteId) {
  await guarded(() => api('DELETE', `/api/consultations/${encodeURIComponent(app.current.id)}/invites/${encodeURIComponent(inviteId)}`));
  $('link-box').hidden = true;
  $('link').value = '';
  await refreshInvites();
}

// -- waiting room -------------------------------------------------------------------------

function setLobby(waiting, cue = true) {
  app.lobby = waiting;
  const ul = $('lobby');
  ul.replaceChildren();
  let arrived = 0;
  for (const p of waiting) {
    const isNew = !app.seen.has(p.participant_id);
    if (isNew) { app.seen.add(p.participant_id); arrived += 1; if (cue) announce(t('live.arrived', { name: p.display_name })); }
    const name = p.display_name || '';
    ul.append(h('li', { class: isNew && cue ? 'new' : '', 'data-participant-id': p.participant_id },
      h('div', { class: 'who', text: name }),
      h('div', { class: 'meta' },
        h('span', { i18n: `dash.deviceCheck.${p.device_check || 'skipped'}` }),
        p.waiting_since ? ` · ${t('dash.waitingSince', { time: new Date(p.waiting_since * 1000).toLocaleTimeString(lang() === 'fr' ? 'fr-FR' : 'en-GB', { timeStyle: 'short' }) })}` : ''),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'admit', i18n: 'dash.admit', 'i18n-aria-label': 'dash.admitName', 'i18n-vars': { name }, onclick: () => decide(p.participant_id, 'admit') }),
        h('button', { type: 'button', class: 'secondary deny', i18n: 'dash.deny', 'i18n-aria-label': 'dash.denyName', 'i18n-vars': { name }, onclick: () => decide(p.participant_id, 'deny') }))));
  }
  applyI18n(ul);
  $('lobby-empty').hidden = waiting.length > 0;
  const count = $('lobby-count');
  count.hidden = waiting.length === 0;
  count.textContent = String(waiting.length);
  updateTitle();
  if (arrived && cue) { beep(); if (app.current) refreshInvites(); }
}

// A note to everyone waiting ("running 10 minutes late"); empty clears it. Not end-to-end
// encrypted (the hint says so): the server relays it and keeps it in memory only.
function sendLobbyNote(event) {
  event.preventDefault();
  const text = $('lobby-note').value.trim();
  const sent = !!app.session && app.session.send('lobby-note', { text });
  $('lobby-note-sent').hidden = !sent;
  if (!sent) announce(t('common.error'));
}

async function decide(pid, verb) {
  try {
    await guarded(() => api('POST', `/api/consultations/${encodeURIComponent(app.current.id)}/participants/${encodeURIComponent(pid)}/${verb}`));
  } catch (err) { announce((err && err.message) || t('common.error')); }
}

// -- call ---------------------------------------------------------------------------------

async function startCall(cid) {
  stopCall();
  const { stream, error } = await acquireMedia(savedDevices());
  const localMedia = {
    stream: stream || new MediaStream(),
    audioTrack: stream ? stream.getAudioTracks()[0] || null : null,
    videoTrack: stream ? stream.getVideoTracks()[0] || null : null,
  };
  const session = new CallSession({
    consultationId: cid,
    localMedia,
    getRoomToken: async () => (await guarded(() => api('POST', `/api/consultations/${encodeURIComponent(cid)}/room-token`))).room_token,
  });
  app.session = session;
  app.view = new CallView(session, $('call-area'), {
    isHost: true,
    onLeave: () => { stopCall(); showList(); },
    onEndAll: endForAll,
    checkDevices: true, // the doctor's device check, until a patient is in the call
    mediaError: error,
  });
  session.addEventListener('lobby', (e) => { setLobby(e.detail.waiting || []); renderMovable(); });
  session.addEventListener('participants', renderMovable);
  session.addEventListener('state', (e) => {
    app.state = e.detail;
    document.body.dataset.state = e.detail;
    if (e.detail === 'ended') { announce(t('live.ended')); stopCall(); showList(); }
    if (e.detail.startsWith('e2ee-')) showCallProblem(e.detail);
  });
  session.addEventListener('message', (e) => document.dispatchEvent(new CustomEvent('teleconsult:message', { detail: e.detail })));
  await session.connect();
}

// The call could not go on under E2EE: say why in the call area (EN/FR).
function showCallProblem(state) {
  const key = `dash.${state.replace(/-([a-z])/g, (_, c) => c.toUpperCase())}`;
  if (app.view) { app.view.destroy(); app.view = null; }
  const box = h('div', { id: 'call-problem', class: 'card notice error', role: 'alert', 'data-state': state }, h('p', { i18n: key }));
  applyI18n(box);
  $('call-area').replaceChildren(box);
  announce(t(key));
}

async function endForAll() {
  if (!app.current) return;
  try {
    await guarded(() => api('POST', `/api/consultations/${encodeURIComponent(app.current.id)}/end`));
  } catch (err) { announce((err && err.message) || t('common.error')); return; }
  if (app.session) app.session.finish('ended');
}

function stopCall() {
  const session = app.session;
  app.session = null;
  if (session) {
    if (!['ended', 'left'].includes(session.state)) session.leave();
    for (const tr of session.local.stream ? session.local.stream.getTracks() : []) tr.stop();
  }
  if (app.view) { app.view.destroy(); app.view = null; }
}

// -- idle timeout: wipe the page, then /login ---------------------------------------------

function idleTimeout() {
  stopCall();
  if (app.feed) app.feed.stop();
  if (app.idle) app.idle.stop();
  document.body.replaceChildren();
  document.title = '';
  try { sessionStorage.clear(); } catch { /* ignore */ }
  api('POST', '/api/logout').catch(() => {}).finally(goLogin);
}

async function main() {
  await initI18n();
  // A server that is briefly busy or restarting must not leave a blank page: retry with a
  // short backoff, then say so (a 401 goes to the sign-in page at once).
  let me;
  for (let attempt = 0; ; attempt += 1) {
    try { me = await api('GET', '/api/me'); break; } catch (err) {
      if (err instanceof ApiError && err.status === 401) { goLogin(); return; }
      if (attempt >= 4) {
        document.body.append(h('p', { class: 'notice error', role: 'alert', text: t('common.error') }));
        throw err;
      }
      await new Promise((resolve) => { window.setTimeout(resolve, 500 * 2 ** attempt); });
    }
  }
  if (me.passkey_setup_required) { location.assign('/account?setup=passkey'); return; }
  if (me.role === 'admin') { location.replace('/admin'); return; } // the admin page, not the doctor's
  leaveNothingBehind(me);
  app.me = me;
  setCsrfToken(me.csrf_token);
  const signedIn = $('signed-in');
  const showName = () => { signedIn.textContent = t('dash.signedInAs', { name: me.display_name || me.email }); };
  showName();
  onLanguageChange(() => { showName(); if (!$('view-list').hidden) { renderList(); if (app.recordings) app.recordings.render(); } });
  $('main').hidden = false;
  trackTopbarHeight();
  app.idle = new IdleGuard(me.idle_timeout_s || 1800, {
    onTimeout: idleTimeout,
    touch: () => api('GET', '/api/me').catch((err) => { if (err instanceof ApiError && err.status === 401) idleTimeout(); }),
    busy: () => !!app.session && app.session.state === 'in-call'
      && [...app.session.participants.keys()].some((pid) => pid !== app.session.selfId),
  });
  app.recordings = new RecordingsPanel({
    labelFor: (cid) => { const c = app.consultations.find((x) => x.id === cid); return c ? titleOf(c) : null; },
    onUnauthenticated: goLogin,
  });
  $('new-form').addEventListener('submit', createConsultation);
  $('back').addEventListener('click', async () => {
    const others = app.session && app.session.state === 'in-call'
      && [...app.session.participants.keys()].some((pid) => pid !== app.session.selfId);
    if (others && !(await confirmAction({ titleKey: 'call.confirmLeave.title', textKey: 'call.confirmLeave.hostText', confirmKey: 'call.confirmLeave.ok' }))) return;
    stopCall();
    showList();
  });
  setupNotifyButton();
  $('lobby-note-form').addEventListener('submit', sendLobbyNote);
  app.feed = new DashboardFeed();
  app.feed.addEventListener('status', (e) => onFeedStatus(e.detail));
  app.feed.addEventListener('ended', goLogin);
  app.feed.start();
  $('new-link').addEventListener('click', newLink);
  $('copy-link').addEventListener('click', copyLink);
  $('logout').addEventListener('click', async () => {
    stopCall();
    try { await api('POST', '/api/logout'); } finally { goLogin(); }
  });
  const m = /^#c=(.+)$/.exec(location.hash);
  if (m) {
    try { await openConsultation(decodeURIComponent(m[1])); return; } catch { /* fall through to the list */ }
  }
  await showList();
}

main();
