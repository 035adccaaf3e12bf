// /enrol#<token>: set a password, add the TOTP (QR or text secret), confirm a code, save the
// recovery codes (shown once). The token stays in the fragment: it never reaches the server's
// logs; the page posts it and removes it from the address bar.
import { initI18n, onLanguageChange, t } from '../i18n.js';
import { api } from '../http.js';
import { PASSWORD_CODES, clearError, renderCodes, showError } from './common.js';
import { attachStrengthMeter } from './strength-meter.js';
import { createPasskey, passkeysSupported } from './webauthn.js';

const $ = (id) => document.getElementById(id);

async function main() {
  await initI18n();
  const status = $('status');
  const token = location.hash.slice(1);
  history.replaceState(null, '', location.pathname);
  let started;
  try {
    if (!token) throw { code: 'gone' };
    started = await api('POST', '/api/enrol/start', { token });
  } catch (err) {
    $('loading').hidden = true;
    showError(status, err);
    return;
  }
  $('loading').hidden = true;
  if (started.email) {
    $('enrol-email').textContent = started.email;
    $('enrol-for').hidden = false;
  }
  $('identity').hidden = !started.needs_identity;
  if (started.reset_at) {
    const render = () => {
      $('reset-notice').textContent = t('auth.notice.mfa_reset', {
        when: new Date(started.reset_at * 1000).toLocaleString(document.documentElement.lang) });
    };
    render();
    onLanguageChange(render);
    $('reset-notice').hidden = false;
  }
  const identity = () => (started.needs_identity
    ? { email: $('email').value || undefined, display_name: $('display-name').value || undefined } : {});
  attachStrengthMeter($('password'), $('password-meter'), $('password-strength'), $('password-help'), identity);
  let withPasskey = false;
  const choose = (passkey) => {
    withPasskey = passkey;
    $('passkey-step').hidden = !passkey;
    $('totp-step').hidden = passkey;
    $('code').required = !passkey;
    (passkey ? $('passkey-name') : $('code')).focus();
  };
  $('use-passkey').hidden = !(started.passkeys_enabled && passkeysSupported());
  $('use-passkey').addEventListener('click', () => choose(true));
  $('use-totp').addEventListener('click', () => choose(false));
  $('qr').src = `data:image/svg+xml;base64,${btoa(started.qr_svg)}`;
  $('secret').textContent = started.totp_secret.replace(/(.{4})/g, '$1 ').trim();
  const form = $('enrol-form');
  form.hidden = false;
  (started.needs_identity ? $('email') : $('password')).focus();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError(status);
    if ($('password').value !== $('password2').value) {
      showError(status, 'auth.error.passwordMismatch', $('password2'));
      return;
    }
    const body = { enrolment_id: started.enrolment_id, password: $('password').value };
    if (started.needs_identity) {
      body.email = $('email').value;
      body.display_name = $('display-name').value;
    }
    $('enrol-submit').disabled = true;
    try {
      let done;
      if (withPasskey) {
        const answer = await createPasskey('/api/enrol/passkey/options', {
          enrolment_id: started.enrolment_id, ...identity() });
        done = await api('POST', '/api/enrol/passkey/finish', {
          ...body, ...answer, name: $('passkey-name').value.trim() || t('auth.passkeys.defaultName') });
      } else {
        done = await api('POST', '/api/enrol/finish', { ...body, code: $('code').value.replace(/\s+/g, '') });
      }
      form.hidden = true;
      renderCodes($('code-list'), done.recovery_codes);
      $('codes').hidden = false;
      $('codes').focus();
    } catch (err) {
      const field = PASSWORD_CODES.includes(err.code) ? $('password') : err.code === 'invalid_code' ? $('code') : null;
      showError(status, err, field);
    } finally {
      $('enrol-submit').disabled = false;
    }
  });
}

main();
