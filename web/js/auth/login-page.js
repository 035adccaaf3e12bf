// /login: password, then a TOTP code, a passkey or a recovery code — or a passkey alone
// (passwordless, with user verification). "This is a shared computer" asks the server for a
// short idle timeout; the pages then leave nothing behind when left (leaving.js).
import { applyI18n, initI18n, onLanguageChange, t } from '../i18n.js';
import { api } from '../http.js';
import { clearError, showError } from './common.js';
import { safeNextPath } from './next-target.js';
import { getPasskey, passkeysSupported } from './webauthn.js';

const $ = (id) => document.getElementById(id);

function nextPath() {
  return safeNextPath(new URLSearchParams(location.search).get('next'), location.origin);
}

function fmt(epochS) {
  return new Date(epochS * 1000).toLocaleString(document.documentElement.lang);
}

// A notice from the server (e.g. an administrator reset this account's sign-in): shown, and
// when it arrives with a completed sign-in the person continues by a click, not at once.
function showNotice(notice, { thenGo = false } = {}) {
  if (!notice) return false;
  const text = $('notice-text');
  const render = () => { text.textContent = t(`auth.notice.${notice.code}`, { when: fmt(notice.at) }); };
  render();
  $('notice').hidden = false;
  onLanguageChange(render);
  if (thenGo) {
    $('notice-continue').hidden = false;
    $('notice-continue').addEventListener('click', () => location.assign(nextPath()));
    $('notice-continue').focus();
  }
  return true;
}

function signedIn(result) {
  if (!showNotice(result && result.notice, { thenGo: true })) location.assign(nextPath());
  $('password-form').hidden = true;
  $('mfa-form').hidden = true;
}

async function main() {
  await initI18n();
  const status = $('status');
  const passwordForm = $('password-form');
  const mfaForm = $('mfa-form');
  let useRecovery = false;
  const canPasskey = passkeysSupported();
  let policy = { passwordless: true, shared_computer_idle_s: 300 };
  try { policy = await api('GET', '/api/sign-in-policy'); } catch { /* defaults */ }
  $('passkey-login-box').hidden = !(canPasskey && policy.passwordless);
  const sharedHelp = () => {
    $('shared-help').textContent = t('auth.login.sharedHelp', {
      minutes: Math.max(1, Math.round(policy.shared_computer_idle_s / 60)) });
  };
  sharedHelp();
  onLanguageChange(sharedHelp);

  passwordForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(status);
    $('password-submit').disabled = true;
    try {
      const res = await api('POST', '/api/login', {
        email: $('email').value, password: $('password').value, shared_computer: $('shared').checked,
      });
      $('password').value = '';
      passwordForm.hidden = true;
      mfaForm.hidden = false;
      const factors = (res && res.factors) || ['totp'];
      const passkey = canPasskey && factors.includes('passkey');
      $('mfa-passkey-box').hidden = !passkey;
      $('totp-box').hidden = !factors.includes('totp');
      $('show-recovery').hidden = factors.includes('totp');
      showNotice(res && res.notice);
      (passkey ? $('mfa-passkey') : $('code')).focus();
    } catch (err) {
      showError(status, err, $('password'));
    } finally {
      $('password-submit').disabled = false;
    }
  });

  $('passkey-login').addEventListener('click', async () => {
    clearError(status);
    $('passkey-login').disabled = true;
    try {
      const answer = await getPasskey('/api/passkeys/login/options');
      signedIn(await api('POST', '/api/passkeys/login', { ...answer, shared_computer: $('shared').checked }));
    } catch (err) {
      showError(status, err, $('passkey-login'));
    } finally {
      $('passkey-login').disabled = false;
    }
  });

  $('mfa-passkey').addEventListener('click', async () => {
    clearError(status);
    $('mfa-passkey').disabled = true;
    try {
      const answer = await getPasskey('/api/login/passkey/options');
      signedIn(await api('POST', '/api/login/passkey', answer));
    } catch (err) {
      if (err.code === 'login_expired') {
        mfaForm.hidden = true;
        passwordForm.hidden = false;
      }
      showError(status, err, $('mfa-passkey'));
    } finally {
      $('mfa-passkey').disabled = false;
    }
  });

  const toggleRecovery = () => {
    useRecovery = !useRecovery;
    $('code-field').hidden = useRecovery;
    $('recovery-field').hidden = !useRecovery;
    $('use-recovery').dataset.i18n = useRecovery ? 'auth.mfa.useCode' : 'auth.mfa.useRecovery';
    applyI18n($('use-recovery'));
    (useRecovery ? $('recovery-code') : $('code')).focus();
  };
  $('use-recovery').addEventListener('click', toggleRecovery);
  $('show-recovery').addEventListener('click', () => {
    $('totp-box').hidden = false;
    $('show-recovery').hidden = true;
    $('use-recovery').hidden = true;
    if (!useRecovery) toggleRecovery();
  });

  mfaForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(status);
    $('mfa-submit').disabled = true;
    const body = useRecovery ? { recovery_code: $('recovery-code').value.trim() }
      : { code: $('code').value.replace(/\s+/g, '') };
    try {
      signedIn(await api('POST', '/api/login/mfa', body));
    } catch (err) {
      if (err.code === 'login_expired') {
        mfaForm.hidden = true;
        passwordForm.hidden = false;
        showError(status, err, $('email'));
      } else {
        showError(status, err, useRecovery ? $('recovery-code') : $('code'));
      }
    } finally {
      $('mfa-submit').disabled = false;
    }
  });
  $('email').focus();
}

main();
