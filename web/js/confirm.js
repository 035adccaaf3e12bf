// A confirmation dialog (a native <dialog>, modal, Escape cancels): resolves true on the
// confirming button only. Used before leaving a call and before ending it for everyone.
import { applyI18n, h } from './dom.js';

export function confirmAction({ titleKey, textKey, confirmKey, danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'danger confirm-ok' : 'confirm-ok', i18n: confirmKey });
    const cancel = h('button', { type: 'button', class: 'secondary confirm-cancel', i18n: 'common.cancel' });
    const dialog = h('dialog', { class: 'confirm-dialog card', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-text' },
      h('h2', { id: 'confirm-title', i18n: titleKey }),
      h('p', { id: 'confirm-text', i18n: textKey }),
      h('div', { class: 'row' }, cancel, ok));
    applyI18n(dialog);
    let answer = false;
    ok.addEventListener('click', () => { answer = true; dialog.close(); });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
