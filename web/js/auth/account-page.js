// /account: who am I; my passkeys (add, name, remove — after a recent re-authentication);
// where I am signed in (browser and device, since, last active; sign out one or everywhere);
// change password (with the strength meter); new recovery codes; sign out.
import { initI18n, t, onLanguageChange } from '../i18n.js';
import { api, setCsrfToken } from '../http.js';
import { clearError, renderCodes, showError } from './common.js';
import { clearSiteStorage, leaveNothingBehind } from './leaving.js';
import { attachStrengthMeter } from './strength-meter.js';
import { createPasskey, getPasskey, passkeysSupported } from './webauthn.js';

const $ = (id) => document.getElementById(id);
let me = null;
let pending = null; // the action waiting for a re-authentication

function say(key) {
  $('status').dataset.i18n = key;
  $('status').textContent = t(key);
}

function fmt(epochS) {
  return new Date(epochS * 1000).toLocaleString(document.documentElement.lang);
}

function button(key, onClick, cls = 'secondary') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = t(key);
  b.addEventListener('click', onClick);
  return b;
}

// Run `action`; when the server wants a recent re-authentication, ask for it, then run it again.
async function withReauth(action) {
  clearError($('error'));
  try {
    await action();
  } catch (err) {
    if (err.code === 'reauth_required') {
      pending = action;
      $('reauth-box').hidden = false;
      $('reauth-any').focus();
    } else {
      showError($('error'), err);
    }
  }
}

async function reauthDone() {
  $('reauth-box').hidden = true;
  $('reauth-any').value = '';
  const action = pending;
  pending = null;
  if (action) await withReauth(action);
}

async function loadPasskeys() {
  if (!me.passkeys_enabled) return;
  const passkeys = await api('GET', '/api/passkeys');
  $('no-passkeys').hidden = passkeys.length > 0;
  $('passkeys').replaceChildren(...passkeys.map((p) => {
    const li = document.createElement('li');
    li.dataset.passkeyId = p.id;
    const text = document.createElement('span');
    const used = p.last_used_at ? fmt(p.last_used_at) : t('auth.passkeys.never');
    text.textContent = `${p.name} · ${t('auth.passkeys.added')} ${fmt(p.created_at)} · ${t('auth.passkeys.lastUsed')} ${used}`;
    li.append(text);
    const actions = document.createElement('span');
    actions.className = 'actions';
    li.append(actions);
    actions.append(button('auth.passkeys.rename', () => withReauth(async () => {
      const name = window.prompt(t('auth.passkeys.name'), p.name);
      if (!name) return;
      await api('PATCH', `/api/passkeys/${encodeURIComponent(p.id)}`, { name });
      say('auth.passkeys.renamed');
      await loadPasskeys();
    })));
    actions.append(button('auth.passkeys.remove', () => withReauth(async () => {
      await api('DELETE', `/api/passkeys/${encodeURIComponent(p.id)}`);
      say('auth.passkeys.removed');
      await loadPasskeys();
      $('passkeys-title').focus();
    })));
    return li;
  }));
}

async function addPasskey() {
  const name = $('passkey-name').value.trim() || t('auth.passkeys.defaultName');
  await withReauth(async () => {
    const answer = await createPasskey('/api/passkeys/register/options');
    await api('POST', '/api/passkeys/register', { ...answer, name });
    $('passkey-name').value = '';
    say('auth.passkeys.addedOk');
    if (me.passkey_setup_required) {
      me.passkey_setup_required = false;
      location.assign('/');
      return;
    }
    await loadPasskeys();
  });
}

async function loadSessions() {
  const sessions = await api('GET', '/api/sessions');
  $('sessions').replaceChildren(...sessions.map((s) => {
    const li = document.createElement('li');
    const text = document.createElement('span');
    const where = s.current ? `${s.device} (${t('auth.sessions.current')})` : s.device;
    const shared = s.shared_computer ? ` · ${t('auth.sessions.shared')}` : '';
    text.textContent = `${where}${shared} · ${t('auth.sessions.since')} ${fmt(s.created_at)} · `
      + `${t('auth.sessions.lastSeen')} ${fmt(s.last_seen)}`;
    li.append(text);
    if (!s.current) {
      li.append(button('auth.sessions.end', async () => {
        try {
          await api('DELETE', `/api/sessions/${encodeURIComponent(s.id_hint)}`);
          say('auth.sessions.ended');
          await loadSessions();
          $('sessions-title').focus();
        } catch (err) { showError($('error'), err); }
      }));
    }
    return li;
  }));
}

async function regenerate() {
  await withReauth(async () => {
    const data = await api('POST', '/api/account/recovery-codes');
    renderCodes($('code-list'), data.recovery_codes);
    $('code-list').hidden = false;
    say('auth.recovery.once');
  });
}

async function main() {
  await initI18n();
  try {
    me = await api('GET', '/api/me');
  } catch (err) {
    if (err.status === 401) { location.assign('/login?next=/account'); return; }
    showError($('error'), err);
    return;
  }
  setCsrfToken(me.csrf_token);
  leaveNothingBehind(me);
  $('who').textContent = `${me.display_name} — ${me.email}`;
  $('passkeys-card').hidden = !me.passkeys_enabled;
  $('passkey-add').disabled = !passkeysSupported();
  $('reauth-passkey').hidden = !(me.passkeys_enabled && passkeysSupported());
  $('setup-banner').hidden = !me.passkey_setup_required;
  await Promise.all([loadSessions(), loadPasskeys()]);
  onLanguageChange(() => { loadSessions(); loadPasskeys(); });
  if (me.passkey_setup_required) $('passkey-name').focus();

  attachStrengthMeter($('new-password'), $('pw-meter'), $('pw-strength'), $('pw-help'));
  $('password-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError($('error'));
    try {
      await api('POST', '/api/account/password', {
        current_password: $('current-password').value, new_password: $('new-password').value,
      });
      $('current-password').value = '';
      $('new-password').value = '';
      say('auth.password.changed');
      await loadSessions();
    } catch (err) { showError($('error'), err, $('new-password')); }
  });

  $('passkey-add-form').addEventListener('submit', (event) => { event.preventDefault(); addPasskey(); });
  $('regenerate').addEventListener('click', regenerate);
  $('reauth-box').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError($('error'));
    const value = $('reauth-any').value.replace(/\s+/g, '');
    const body = /^[0-9]{6}$/.test(value) ? { code: value } : { password: $('reauth-any').value };
    try {
      await api('POST', '/api/reauth', body);
      await reauthDone();
    } catch (err) { showError($('error'), err, $('reauth-any')); }
  });
  $('reauth-passkey').addEventListener('click', async () => {
    clearError($('error'));
    try {
      const answer = await getPasskey('/api/reauth/passkey/options');
      await api('POST', '/api/reauth/passkey', answer);
      await reauthDone();
    } catch (err) { showError($('error'), err, $('reauth-passkey')); }
  });

  $('sign-out-everywhere').addEventListener('click', async () => {
    clearError($('error'));
    if (!window.confirm(t('auth.sessions.everywhereConfirm'))) return;
    try {
      await api('DELETE', '/api/sessions');
      if (me.shared_computer) clearSiteStorage();
      location.assign('/login');
    } catch (err) { showError($('error'), err); }
  });

  $('logout').addEventListener('click', async () => {
    try { await api('POST', '/api/logout'); } finally {
      if (me.shared_computer) clearSiteStorage();
      location.assign('/login');
    }
  });
}

main();
