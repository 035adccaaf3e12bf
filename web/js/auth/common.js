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
};

// Show an ApiError (or a key) in a live region; focus returns to `focusEl` for a retry.
export function showError(el, err, focusEl) {
  const key = typeof err === 'string' ? err : (ERROR_KEYS[err && err.code] || 'common.error');
  el.dataset.i18n = key;
  el.textContent = t(key);
  if (focusEl) focusEl.focus();
}

export function clearError(el) {
  delete el.dataset.i18n;
  el.textContent = '';
}

export function renderCodes(list, codes) {
  list.replaceChildren(...codes.map((code) => {
    const li = document.createElement('li');
    li.textContent = code;
    return li;
  }));
}
