// Shared i18n: French and English dictionaries in /static/i18n/<lang>.json.
// Markup carries keys only: data-i18n (text), data-i18n-aria-label, data-i18n-placeholder,
// data-i18n-title, data-i18n-alt. JS uses t(key, vars). A <select data-lang-switch> switches.

export const LANGUAGES = ['en', 'fr'];
const STORAGE_KEY = 'tc_lang';
const ATTRS = ['aria-label', 'placeholder', 'title', 'alt'];

let current = 'en';
let dict = {};
const listeners = new Set();

export function preferredLanguage() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved && LANGUAGES.includes(saved)) return saved;
  } catch { /* storage may be unavailable */ }
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

export function lang() { return current; }

// t('key', {name: 'X'}) -> dictionary string with {name} replaced; the key itself if missing.
export function t(key, vars) {
  let text = Object.prototype.hasOwnProperty.call(dict, key) ? dict[key] : key;
  if (vars) {
    for (const [name, value] of Object.entries(vars)) text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

function withRoot(root, selector) {
  const found = [...root.querySelectorAll(selector)];
  if (root.matches && root.matches(selector)) found.unshift(root);
  return found;
}

// Fill every [data-i18n*] element in root (root included). data-i18n-vars holds JSON variables.
export function applyI18n(root = document) {
  const vars = (el) => { try { return el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : undefined; } catch { return undefined; } };
  for (const el of withRoot(root, '[data-i18n]')) el.textContent = t(el.dataset.i18n, vars(el));
  for (const attr of ATTRS) {
    for (const el of withRoot(root, `[data-i18n-${attr}]`)) el.setAttribute(attr, t(el.getAttribute(`data-i18n-${attr}`), vars(el)));
  }
  if (root === document) {
    document.documentElement.lang = current;
    const titleKey = document.documentElement.dataset.i18nTitleKey;
    if (titleKey) document.title = t(titleKey);
  }
}

export async function setLanguage(code) {
  if (!LANGUAGES.includes(code)) code = 'en';
  const response = await fetch(`/static/i18n/${code}.json`, { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`i18n ${code}: ${response.status}`);
  dict = await response.json();
  current = code;
  try { localStorage.setItem(STORAGE_KEY, code); } catch { /* ignore */ }
  applyI18n(document);
  for (const select of document.querySelectorAll('[data-lang-switch]')) select.value = code;
  for (const fn of listeners) fn(code);
}

export function onLanguageChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

// Load the preferred language and wire every <select data-lang-switch>.
export async function initI18n() {
  for (const select of document.querySelectorAll('[data-lang-switch]')) {
    select.addEventListener('change', () => { setLanguage(select.value); });
  }
  await setLanguage(preferredLanguage());
}
