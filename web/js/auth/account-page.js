// /account: who am I, my sessions (end the others), change password, new recovery codes
// (needs a recent re-authentication), sign out.
import { initI18n, t, onLanguageChange } from '../i18n.js';
import { api, setCsrfToken } from '../http.js';
import { clearError, renderCodes, showError } from './common.js';

const $ = (id) => document.getElementById(id);

function say(key) {
  $('status').dataset.i18n = key;
  $('status').textContent = t(key);
}

function fmt(epochS) {
  return new Date(epochS * 1000).toLocaleString(document.documentElement.lang);
}

async function loadSessions() {
  const sessions = await api('GET', '/api/sessions');
  $('sessions').replaceChildren(...sessions.map((s) => {
    const li = document.createElement('li');
    const text = document.createElement('span');
    text.textContent = `${t(s.current ? 'auth.sessions.current' : 'auth.sessions.other')} · `
      + `${t('auth.sessions.since')} ${fmt(s.created_at)} · ${t('auth.sessions.lastSeen')} ${fmt(s.last_seen)}`;
    li.append(text);
    if (!s.current) {
      const end = document.createElement('button');
      end.type = 'button';
      end.className = 'secondary';
      end.textContent = t('auth.sessions.end');
      end.addEventListener('click', async () => {
        try {
          await api('DELETE', `/api/sessions/${encodeURIComponent(s.id_hint)}`);
          say('auth.sessions.ended');
          await loadSessions();
          $('sessions-title').focus();
        } catch (err) { showError($('error'), err); }
      });
      li.append(end);
    }
    return li;
  }));
}

async function regenerate() {
  clearError($('error'));
  try {
    const data = await api('POST', '/api/account/recovery-codes');
    $('reauth-form').hidden = true;
    renderCodes($('code-list'), data.recovery_codes);
    $('code-list').hidden = false;
    say('auth.recovery.once');
  } catch (err) {
    if (err.code === 'reauth_required') {
      $('reauth-form').hidden = false;
      $('reauth-password').focus();
    } else {
      showError($('error'), err);
    }
  }
}

async function main() {
  await initI18n();
  let me;
  try {
    me = await api('GET', '/api/me');
  } catch (err) {
    if (err.status === 401) { location.assign('/login?next=/account'); return; }
    showError($('error'), err);
    return;
  }
  setCsrfToken(me.csrf_token);
  $('who').textContent = `${me.display_name} — ${me.email}`;
  await loadSessions();
  onLanguageChange(() => { loadSessions(); });

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

  $('regenerate').addEventListener('click', regenerate);
  $('reauth-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError($('error'));
    try {
      await api('POST', '/api/reauth', { password: $('reauth-password').value });
      $('reauth-password').value = '';
      await regenerate();
    } catch (err) { showError($('error'), err, $('reauth-password')); }
  });

  $('logout').addEventListener('click', async () => {
    try { await api('POST', '/api/logout'); } finally { location.assign('/login'); }
  });
}

main();
