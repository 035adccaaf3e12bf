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

const app = { me: null, state: 'loading', current: null, session: null, view: null, lobby: [], seen: new Set(), idle: null, consultations: [], recordings: null };

Object.defineProperty(window, 'teleconsult', {
  value: Object.freeze({
    get pc() { return app.session ? app.session.pc : null; },
    get state() { return app.state; },
    get consultationId() { return app.current ? app.current.id : null; },
    get lobby() { return app.lobby.map((p) => ({ ...p })); },
    get participants() { return app.session ? [...app.session.participants.values()].map((p) => ({ ...p })) : []; },
    get beeps() { return window.teleconsultBeeps || 0; },
  }),
});

function $(id) { return document.getElementById(id); }

function fmtTime(epochS) {
  if (!epochS) return t('dash.unscheduled');
  return new Date(epochS * 1000).toLocaleString(lang() === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

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
      h('span', { class: 'c-label', text: c.label || '—' }),
      h('span', { class: 'muted', text: fmtTime(c.scheduled_at) }),
      h('span', { class: 'state-pill', i18n: `dash.state.${c.state}` }),
      live ? h('button', { type: 'button', class: 'open-consultation', i18n: 'dash.open', onclick: () => openConsultation(c.id) }) : null));
  }
  applyI18n(ul);
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
  $('c-title').textContent = c.label || '—';
  $('link-box').hidden = true;
  app.seen = new Set();
  setLobby(c.waiting || [], false);
  await refreshInvites();
  await startCall(cid);
  $('main').focus();
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
  const hasOutstanding = invites.some((i) => i.state === 'outstanding');
  const btn = $('new-link');
  btn.dataset.i18n = hasOutstanding ? 'dash.reissue' : 'dash.newLink';
  btn.textContent = t(btn.dataset.i18n);
}

async function newLink() {
  const cid = app.current.id;
  try {
    const issued = await guarded(() => api('POST', `/api/consultations/${encodeURIComponent(cid)}/invites`, { role: 'patient' }));
    if (!issued) return;
    $('link').value = issued.link;
    const qr = $('link-qr');
    if (issued.qr_svg) {
      qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(issued.qr_svg)}`;
      qr.hidden = false;
    } else {
      qr.hidden = true;
    }
    $('link-box').hidden = false;
    $('link').focus();
    $('link').select();
    await refreshInvites();
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
  document.title = waiting.length ? `(${waiting.length}) ${t('dash.title')}` : t('dash.title');
  if (arrived && cue) { beep(); if (app.current) refreshInvites(); }
}

async function decide(pid, verb) {
  try {
    await guarded(() => api('POST', `/api/consultations/${encodeURIComponent(app.current.id)}/participants/${encodeURIComponent(pid)}/${verb}`));
  } catch (err) { announce((err && err.message) || t('common.error')); }
}

// -- call ---------------------------------------------------------------------------------

async function startCall(cid) {
  stopCall();
  const { stream } = await acquireMedia(savedDevices());
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
  });
  session.addEventListener('lobby', (e) => setLobby(e.detail.waiting || []));
  session.addEventListener('state', (e) => {
    app.state = e.detail;
    document.body.dataset.state = e.detail;
    if (e.detail === 'ended') { announce(t('live.ended')); stopCall(); showList(); }
  });
  session.addEventListener('message', (e) => document.dispatchEvent(new CustomEvent('teleconsult:message', { detail: e.detail })));
  await session.connect();
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
  if (app.idle) app.idle.stop();
  document.body.replaceChildren();
  document.title = '';
  try { sessionStorage.clear(); } catch { /* ignore */ }
  api('POST', '/api/logout').catch(() => {}).finally(goLogin);
}

async function main() {
  await initI18n();
  let me;
  try { me = await api('GET', '/api/me'); } catch (err) {
    if (err instanceof ApiError && err.status === 401) { goLogin(); return; }
    throw err;
  }
  app.me = me;
  setCsrfToken(me.csrf_token);
  const signedIn = $('signed-in');
  const showName = () => { signedIn.textContent = t('dash.signedInAs', { name: me.display_name || me.email }); };
  showName();
  onLanguageChange(() => { showName(); if (!$('view-list').hidden) { renderList(); if (app.recordings) app.recordings.render(); } });
  $('main').hidden = false;
  app.idle = new IdleGuard(me.idle_timeout_s || 1800, {
    onTimeout: idleTimeout,
    touch: () => api('GET', '/api/me').catch((err) => { if (err instanceof ApiError && err.status === 401) idleTimeout(); }),
    busy: () => !!app.session && app.session.state === 'in-call'
      && [...app.session.participants.keys()].some((pid) => pid !== app.session.selfId),
  });
  app.recordings = new RecordingsPanel({
    labelFor: (cid) => { const c = app.consultations.find((x) => x.id === cid); return c ? c.label : null; },
    onUnauthenticated: goLogin,
  });
  $('new-form').addEventListener('submit', createConsultation);
  $('back').addEventListener('click', () => { stopCall(); showList(); });
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
