// A value the admin page shows once (an enrolment link, an API key, a signing secret): the
// input `id` in the box `id`-box, with its hint `id`-hint and the copy button `id`-copy.

import { t } from '../i18n.js';
import { announce } from '../live.js';
import { applyI18n } from '../dom.js';

const $ = (id) => document.getElementById(id);

export function showOnce(id, value, hintKey, vars, copyKey) {
  const hint = $(`${id}-hint`);
  hint.dataset.i18n = hintKey;
  hint.dataset.i18nVars = JSON.stringify(vars);
  applyI18n(hint);
  $(id).value = value;
  $(`${id}-copy`).textContent = t(copyKey);
  $(`${id}-box`).hidden = false;
  $(`${id}-box`).scrollIntoView({ block: 'nearest' });
  announce(hint.textContent);
}

export async function copyShown(id) {
  const value = $(id).value;
  try { await navigator.clipboard.writeText(value); } catch { $(id).select(); document.execCommand('copy'); }
  $(`${id}-copy`).textContent = t('admin.copied');
  announce(t('admin.copied'));
}
