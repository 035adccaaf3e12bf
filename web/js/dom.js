// Small DOM helpers. Text goes through data-i18n keys (applied by i18n.applyI18n) so a language
// switch relabels everything; never innerHTML.
import { applyI18n } from './i18n.js';
export { applyI18n };

// h('button', {class: 'x', i18n: 'key', 'i18n-aria-label': 'key2', onclick: fn}, child, ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'i18n') el.dataset.i18n = value;
    else if (name === 'i18n-vars') el.dataset.i18nVars = JSON.stringify(value);
    else if (name.startsWith('i18n-')) el.setAttribute(`data-${name}`, value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'text') el.textContent = value;
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  for (const child of children) if (child != null) el.append(child);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
const ICONS = {
  mic: 'M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V21h2v-3.1A7 7 0 0 0 19 11h-2z',
  camera: 'M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11l-4 4z',
  screen: 'M20 3H4a2 2 0 0 0-2 2v11a2 2 0 0 0 2 2h6v2H8v2h8v-2h-2v-2h6a2 2 0 0 0 2-2V5a2 2 0 0 0-2-2zm0 13H4V5h16v11z',
  hangup: 'M12 9c-1.6 0-3.2.25-4.7.73v3.1c0 .39-.23.74-.56.9-.98.49-1.87 1.12-2.67 1.85a1 1 0 0 1-1.41-.02L.29 13.08a1 1 0 0 1 0-1.41C3.34 8.78 7.46 7 12 7s8.66 1.78 11.71 4.67a1 1 0 0 1 0 1.41l-2.48 2.48a1 1 0 0 1-1.41.02 11.3 11.3 0 0 0-2.67-1.85 1 1 0 0 1-.56-.9v-3.1C15.2 9.25 13.6 9 12 9z',
  settings: 'M19.4 13a7.5 7.5 0 0 0 0-2l2.1-1.6-2-3.5-2.5 1a7.6 7.6 0 0 0-1.7-1L15 3.2h-4l-.4 2.7a7.6 7.6 0 0 0-1.7 1l-2.5-1-2 3.5L6.6 11a7.5 7.5 0 0 0 0 2l-2.1 1.6 2 3.5 2.5-1c.5.4 1.1.7 1.7 1l.4 2.7h4l.4-2.7c.6-.3 1.2-.6 1.7-1l2.5 1 2-3.5-2.3-1.6zM13 15.5a3.5 3.5 0 1 1 0-7 3.5 3.5 0 0 1 0 7z',
  end: 'M6 6h12v12H6z',
  chat: 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z',
  enlarge: 'M4 4h6v2H6v4H4V4zm10 0h6v6h-2V6h-4V4zM4 14h2v4h4v2H4v-6zm14 0h2v6h-6v-2h4v-4z',
  pip: 'M19 7h-8v6h8V7zm2-4H3a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h18a2 2 0 0 0 2-2V5a2 2 0 0 0-2-2zm0 16H3V5h18v14z',
  slash: 'M3.3 2 2 3.3 20.7 22l1.3-1.3z',
};

export function icon(name, withSlash = false) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.classList.add('icon');
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  if (withSlash) {
    const slash = document.createElementNS(SVG_NS, 'path');
    slash.setAttribute('d', ICONS.slash);
    slash.classList.add('slash');
    svg.append(slash);
  }
  return svg;
}

// Set an element's i18n key(s) and relabel it now.
export function relabel(el, keys, vars) {
  if (vars) el.dataset.i18nVars = JSON.stringify(vars);
  for (const [attr, key] of Object.entries(keys)) {
    if (attr === 'text') el.dataset.i18n = key;
    else el.setAttribute(`data-i18n-${attr}`, key);
  }
  applyI18n(el);
}
