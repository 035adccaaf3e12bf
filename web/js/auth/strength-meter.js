// The password strength meter: asks the server's policy (POST /api/password/check, the same
// check a real change runs) while the person types, and says why a password is refused.
import { api } from '../http.js';
import { onLanguageChange, t } from '../i18n.js';
import { errorKey } from './common.js';

const LEVELS = ['auth.strength.0', 'auth.strength.1', 'auth.strength.2', 'auth.strength.3', 'auth.strength.4'];

// input: the password field; meterEl: a <meter min=0 max=4>; textEl: a live text; rulesEl: the
// rules line ("at least {n} characters": n is the clinic's setting); identity(): {email,
// display_name} typed on the page (first-run setup), or {}.
export function attachStrengthMeter(input, meterEl, textEl, rulesEl, identity = () => ({})) {
  let timer = 0;
  let seq = 0;
  let last = null;
  const render = () => {
    if (!last) { textEl.textContent = ''; delete textEl.dataset.code; meterEl.value = 0; return; }
    meterEl.value = last.score;
    const level = t(LEVELS[last.score] || LEVELS[0]);
    textEl.dataset.code = last.code || 'ok';
    const why = last.code === 'password_too_short' ? t('auth.strength.minLength', { n: last.min_length })
      : t(errorKey(last.code));
    textEl.textContent = last.ok ? level : `${level} — ${why}`;
  };
  const check = async () => {
    const mine = ++seq;
    if (!input.value) { last = null; render(); return; }
    try {
      const verdict = await api('POST', '/api/password/check', { password: input.value, ...identity() });
      if (mine === seq) { last = verdict; render(); }
    } catch { /* the meter is advice; the real change still checks */ }
  };
  let minLength = 12;
  const renderRules = () => { rulesEl.textContent = t('auth.password.rules', { n: minLength }); };
  renderRules();
  api('POST', '/api/password/check', { password: '' })
    .then((v) => { minLength = v.min_length; renderRules(); }).catch(() => {});
  onLanguageChange(() => { renderRules(); render(); });
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(check, 200); });
  return { refresh: render, check };
}
