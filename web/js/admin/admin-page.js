// /admin: the clinic administrator's page (docs/api.md "Administration"). Staff accounts
// (create with a one-time enrolment link, disable, enable, reset MFA, change role), the audit
// log (latest entries, verify the whole chain) and every recording. Writes need a recent
// re-authentication: on 403 reauth_required the form at the top asks for the password or an
// authenticator code (POST /api/reauth), then the act is retried. A doctor who opens /admin is
// sent to the dashboard; no session goes to /login.

import { ApiError, api, setCsrfToken } from '../http.js';
import { initI18n, lang, onLanguageChange, t } from '../i18n.js';
import { announce } from '../live.js';
import { h, applyI18n } from '../dom.js';
import { RecordingsPanel } from '../dashboard/recordings.js';
import { leaveNothingBehind } from '../auth/leaving.js';
import { IntegrationsPanel } from './integrations.js';
import { copyShown, showOnce } from './shown-once.js';

const app = { me: null, staff: [], audit: [], pending: null, recordings: null, verify: null, integrations: null };
const $ = (id) => document.getElementById(id);

Object.defineProperty(window, 'teleconsult', {
  value: Object.freeze({
    get state() { return document.body.dataset.state; },
    get staff() { return app.staff.map((a) => ({ ...a })); },
    get integrations() { return app.integrations ? app.integrations.items.map((i) => ({ ...i })) : []; },
  }),
});

const ERRORS = {
  invalid_email: 'admin.error.email', email_taken: 'admin.error.taken', invalid_name: 'admin.error.name',
  invalid_role: 'admin.error.role', own_account: 'admin.error.own', account_disabled: 'admin.error.disabled',
  invalid_credentials: 'recordings.reauth.wrong', rate_limited: 'recordings.reauth.limited',
};
const errorText = (err) => t(ERRORS[err && err.code] || 'common.error');

function locale() { return lang() === 'fr' ? 'fr-FR' : 'en-GB'; }
function goLogin() { location.replace('/login'); }

// Run an act; on reauth_required ask for a factor and retry it; other errors go to `errorEl`,
// in the words `describe` gives them.
async function act(fn, errorEl, describe = errorText) {
  try {
    if (errorEl) errorEl.hidden = true;
    return await fn();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { goLogin(); return undefined; }
    if (err instanceof ApiError && err.code === 'reauth_required') {
      // The caller gets the retried act's result (or undefined when the form is cancelled).
      return new Promise((resolve) => openReauth(async () => resolve(await act(fn, errorEl, describe)), () => resolve(undefined)));
    }
    const el = errorEl || $('staff-load-error');
    el.textContent = describe(err);
    el.hidden = false;
    announce(el.textContent);
    return undefined;
  }
}

function openReauth(retry, cancel) {
  if (app.pending) app.pending.cancel();
  app.pending = { retry, cancel };
  $('admin-reauth-error').hidden = true;
  $('admin-reauth-secret').value = '';
  $('admin-reauth').hidden = false;
  $('admin-reauth').scrollIntoView({ block: 'nearest' });
  $('admin-reauth-secret').focus();
}

function closeReauth() {
  if (app.pending) app.pending.cancel();
  app.pending = null;
  $('admin-reauth').hidden = true;
  $('admin-reauth-secret').value = '';
}

async function reauth(e) {
  e.preventDefault();
  const value = $('admin-reauth-secret').value.trim();
  const errorEl = $('admin-reauth-error');
  if (!value) { errorEl.textContent = t('recordings.reauth.empty'); errorEl.hidden = false; return; }
  const body = /^\d{6}$/.test(value) ? { code: value } : { password: $('admin-reauth-secret').value };
  try {
    await api('POST', '/api/reauth', body);
  } catch (err) {
    errorEl.textContent = errorText(err);
    errorEl.hidden = false;
    $('admin-reauth-secret').focus();
    return;
  }
  const pending = app.pending;
  app.pending = null;
  closeReauth();
  if (pending) await pending.retry();
}

// -- staff -----------------------------------------------------------------------------------

async function loadStaff() {
  const staff = await act(() => api('GET', '/api/admin/staff'));
  if (!staff) return;
  app.staff = staff;
  $('staff-load-error').hidden = true;
  renderStaff();
}

function renderStaff() {
  $('staff-list').replaceChildren(...app.staff.map((a) => {
    const self = a.id === app.me.id;
    const actions = h('div', { class: 'row staff-actions' });
    const label = a.display_name || a.email;
    if (!self) {
      const button = (key, labelKey, onClick, cls = 'secondary') => {
        const b = h('button', { type: 'button', class: cls, i18n: key, 'i18n-aria-label': labelKey, 'i18n-vars': { name: label } });
        b.addEventListener('click', onClick);
        actions.append(b);
      };
      if (a.state === 'disabled') button('admin.enable', 'admin.enableName', () => staffAct(a, 'enable'));
      else button('admin.disable', 'admin.disableName', () => staffAct(a, 'disable'), 'danger');
      if (a.state !== 'disabled') button('admin.resetMfa', 'admin.resetMfaName', () => staffAct(a, 'reset-mfa'));
      const other = a.role === 'admin' ? 'doctor' : 'admin';
      button(`admin.makeRole.${other}`, `admin.makeRoleName.${other}`, () => staffAct(a, 'role', { role: other }));
    }
    const li = h('li', { 'data-account-id': a.id, 'data-state': a.state, 'data-role': a.role },
      h('div', { class: 'staff-who' },
        h('span', { class: 'staff-name' }, label),
        h('span', { class: 'staff-email muted' }, a.email)),
      h('div', { class: 'row staff-tags' },
        h('span', { class: 'state-pill', i18n: `admin.role.${a.role}` }),
        h('span', { class: `state-pill state-${a.state}`, i18n: `admin.state.${a.state}` }),
        self ? h('span', { class: 'muted', i18n: 'admin.you' }) : null),
      h('p', { class: 'error-text staff-row-error', hidden: true, role: 'alert' }),
      actions);
    applyI18n(li);
    return li;
  }));
}

async function staffAct(account, what, body) {
  const row = $('staff-list').querySelector(`li[data-account-id="${CSS.escape(account.id)}"]`);
  const errorEl = row ? row.querySelector('.staff-row-error') : null;
  const result = await act(() => api('POST', `/api/admin/staff/${encodeURIComponent(account.id)}/${what}`, body || {}), errorEl);
  if (!result) return;
  if (result.link) showLink(result.link, result.valid_hours, 'admin.link.reset', result.account);
  announce(t(`admin.done.${what}`, { name: account.display_name || account.email }));
  await Promise.all([loadStaff(), loadAudit()]);
}

async function createStaff(e) {
  e.preventDefault();
  const email = $('staff-email').value.trim();
  const errorEl = $('staff-error');
  if (!email) {
    errorEl.textContent = t('admin.error.email');
    errorEl.hidden = false;
    $('staff-email').setAttribute('aria-invalid', 'true');
    $('staff-email').focus();
    return;
  }
  $('staff-email').removeAttribute('aria-invalid');
  const body = { email, role: $('staff-role').value };
  const name = $('staff-name').value.trim();
  if (name) body.display_name = name;
  $('staff-create').disabled = true;
  try {
    const result = await act(() => api('POST', '/api/admin/staff', body), errorEl);
    if (!result) { if (!errorEl.hidden) errorEl.scrollIntoView({ block: 'nearest' }); return; }
    $('staff-form').reset();
    showLink(result.link, result.valid_hours, 'admin.link.new', result.account);
    await Promise.all([loadStaff(), loadAudit()]);
  } finally {
    $('staff-create').disabled = false;
  }
}

function showLink(link, hours, hintKey, account) {
  showOnce('staff-link', link, hintKey, { name: account.display_name || account.email, hours }, 'admin.copy');
}

// -- audit -----------------------------------------------------------------------------------

function nameOf(id) {
  const a = app.staff.find((x) => x.id === id);
  return a ? (a.display_name || a.email) : id; // names resolved here, in the page only
}

async function loadAudit() {
  const entries = await act(() => api('GET', '/api/admin/audit?limit=50'));
  if (!entries) return;
  app.audit = entries;
  renderAudit();
}

function renderAudit() {
  $('audit-list').replaceChildren(...app.audit.map((e) => {
    const when = new Date(e.time).toLocaleString(locale(), { dateStyle: 'short', timeStyle: 'medium' });
    const target = e.target ? Object.entries(e.target).map(([k, v]) => `${k}: ${k === 'account' ? nameOf(v) : v}`).join(', ') : '';
    return h('li', { value: String(e.seq), 'data-action': e.action },
      h('span', { class: 'audit-time' }, when),
      h('code', { class: 'audit-action' }, e.action),
      h('span', { class: 'audit-actor' }, e.actor ? nameOf(e.actor) : '—'),
      target ? h('span', { class: 'audit-target muted' }, target) : null,
      h('span', { class: `audit-outcome outcome-${e.outcome}` }, e.outcome));
  }));
}

async function verifyAudit() {
  const result = await act(() => api('GET', '/api/admin/audit/verify'));
  if (!result) return;
  app.verify = result;
  renderVerify();
  await loadAudit();
}

function renderVerify() {
  const r = app.verify;
  if (!r) return;
  const el = $('audit-result');
  el.className = r.ok ? 'verify-ok' : 'verify-bad';
  el.textContent = r.ok ? t('admin.audit.intact', { count: r.count }) : t('admin.audit.broken', { seq: r.first_bad_seq, count: r.count });
}

// -- page ------------------------------------------------------------------------------------

async function main() {
  await initI18n();
  let me;
  try { me = await api('GET', '/api/me'); } catch (err) {
    if (err instanceof ApiError && err.status === 401) { goLogin(); return; }
    throw err;
  }
  if (me.passkey_setup_required) { location.assign('/account?setup=passkey'); return; }
  if (me.role !== 'admin') { location.replace('/'); return; }
  leaveNothingBehind(me);
  app.me = me;
  setCsrfToken(me.csrf_token);
  const showName = () => { $('signed-in').textContent = t('dash.signedInAs', { name: me.display_name || me.email }); };
  showName();
  $('staff-form').addEventListener('submit', createStaff);
  $('staff-link-copy').addEventListener('click', () => copyShown('staff-link'));
  $('admin-reauth').addEventListener('submit', reauth);
  $('admin-reauth-cancel').addEventListener('click', closeReauth);
  $('audit-verify').addEventListener('click', verifyAudit);
  $('logout').addEventListener('click', async () => { try { await api('POST', '/api/logout'); } finally { goLogin(); } });
  app.recordings = new RecordingsPanel({ labelFor: () => null, onUnauthenticated: goLogin });
  app.integrations = new IntegrationsPanel({ act, locale, errorText, onChange: loadAudit });
  onLanguageChange(() => {
    showName(); renderStaff(); renderAudit(); renderVerify(); app.recordings.render(); app.integrations.render();
  });
  $('main').hidden = false;
  await loadStaff();
  await Promise.all([loadAudit(), app.recordings.refresh(), app.integrations.refresh()]);
  document.body.dataset.state = 'ready';
}

main();
