// Shared by the login, enrolment and account pages: status messages from i18n keys.
import { t } from '../i18n.js';

const ERROR_KEYS = {
  invalid_credentials: 'auth.error.invalidCredentials',
  rate_limited: 'auth.error.rateLimited',
  login_expired: 'auth.error.loginExpired',
  weak_password: 'auth.error.weakPassword',
  invalid_code: 'auth.error.invalidCode',
  gone: 'auth.error.linkGone',
  invalid_email: 'auth.error.invalidEmail',
  identity_required: 'auth.error.identityRequired',
  reauth_required: 'auth.error.reauthRequired',
  csrf: 'auth.error.reload',
  bad_origin: 'auth.error.reload',
  password_too_short: 'auth.error.passwordTooShort',
  password_too_long: 'auth.error.passwordTooLong',
  password_common: 'auth.error.passwordCommon',
  password_personal: 'auth.error.passwordPersonal',
  password_guessable: 'auth.error.passwordGuessable',
  password_reused: 'auth.error.passwordReused',
  passkey_refused: 'auth.error.passkeyRefused',
  passkey_expired: 'auth.error.passkeyExpired',
  passkey_cancelled: 'auth.error.passkeyCancelled',
  passkey_exists: 'auth.error.passkeyExists',
  passkeys_disabled: 'auth.error.passkeysDisabled',
  invalid_passkey_name: 'auth.error.passkeyName',
  last_factor: 'auth.error.lastFactor',
  too_many_passkeys: 'auth.error.tooManyPasskeys',
  passkey_required: 'auth.error.passkeyRequired',
};

export function errorKey(code) { return ERROR_KEYS[code] || 'common.error'; }

export const PASSWORD_CODES = ['password_too_short', 'password_too_long', 'password_common',
  'password_personal', 'password_guessable', 'password_reused', 'weak_password'];

// Show an ApiError (or a key) in a live region; focus returns to `focusEl` for a retry. The
// message moves next to that field (in view on a phone, read with it), or into view.
export function showError(el, err, focusEl) {
  const key = typeof err === 'string' ? err : errorKey(err && err.code);
  el.dataset.i18n = key;
  el.textContent = t(key);
  const field = focusEl && focusEl.closest('.field');
  if (field) {
    field.after(el);
    if (focusEl.id && el.id) focusEl.setAttribute('aria-describedby', [focusEl.getAttribute('aria-describedby'), el.id].filter(Boolean).join(' '));
  }
  if (focusEl) focusEl.focus();
  el.scrollIntoView({ block: 'nearest' });
}

export function clearError(el) {
  delete el.dataset.i18n;
  el.textContent = '';
}

// The recovery codes, one per line, and Copy / Download / Print beside them.
export function renderCodes(list, codes) {
  list.replaceChildren(...codes.map((code) => {
    const li = document.createElement('li');
    li.textContent = code;
    return li;
  }));
  const text = [t('auth.recovery.fileTitle'), '', ...codes.map((c, i) => `${i + 1}. ${c}`), ''].join('\n');
  let tools = list.nextElementSibling;
  if (!tools || !tools.classList.contains('code-tools')) {
    tools = document.createElement('div');
    tools.className = 'row code-tools';
    list.after(tools);
  }
  const button = (key, onClick) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'secondary';
    b.dataset.i18n = key;
    b.textContent = t(key);
    b.addEventListener('click', onClick);
    return b;
  };
  const copy = button('auth.recovery.copy', async () => {
    try { await navigator.clipboard.writeText(text); copy.textContent = t('auth.recovery.copied'); } catch { copy.textContent = t('common.error'); }
  });
  copy.id = 'codes-copy';
  const download = button('auth.recovery.download', () => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    a.download = 'teleconsult-recovery-codes.txt';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });
  download.id = 'codes-download';
  const print = button('auth.recovery.print', () => {
    document.body.classList.add('printing-codes');
    window.addEventListener('afterprint', () => document.body.classList.remove('printing-codes'), { once: true });
    window.print();
  });
  print.id = 'codes-print';
  tools.replaceChildren(copy, download, print);
}
