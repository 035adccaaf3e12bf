// /login: password, then a TOTP code (or a recovery code). Authenticated only after both.
import { applyI18n, initI18n } from '../i18n.js';
import { api } from '../http.js';
import { clearError, showError } from './common.js';

const $ = (id) => document.getElementById(id);

function nextPath() {
  const next = new URLSearchParams(location.search).get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

async function main() {
  await initI18n();
  const status = $('status');
  const passwordForm = $('password-form');
  const mfaForm = $('mfa-form');
  let useRecovery = false;

  passwordForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(status);
    $('password-submit').disabled = true;
    try {
      await api('POST', '/api/login', { email: $('email').value, password: $('password').value });
      $('password').value = '';
      passwordForm.hidden = true;
      mfaForm.hidden = false;
      $('code').focus();
    } catch (err) {
      showError(status, err, $('password'));
    } finally {
      $('password-submit').disabled = false;
    }
  });

  $('use-recovery').addEventListener('click', () => {
    useRecovery = !useRecovery;
    $('code-field').hidden = useRecovery;
    $('recovery-field').hidden = !useRecovery;
    $('use-recovery').dataset.i18n = useRecovery ? 'auth.mfa.useCode' : 'auth.mfa.useRecovery';
    applyI18n($('use-recovery'));
    (useRecovery ? $('recovery-code') : $('code')).focus();
  });

  mfaForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(status);
    $('mfa-submit').disabled = true;
    const body = useRecovery ? { recovery_code: $('recovery-code').value.trim() }
      : { code: $('code').value.replace(/\s+/g, '') };
    try {
      await api('POST', '/api/login/mfa', body);
      location.assign(nextPath());
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
