// The recording consent prompt and the recording status in the call view. The call view owns
// the base markup (#consent-prompt, #recording-indicator, #consent-withdraw); recording-wiring.js
// adds #recording-status and the host's buttons, and calls these functions when
// `consent-prompt` / `recording-state` arrive.
//
//   showConsentPrompt({text, lang}, onAnswer)   onAnswer('yes' | 'no')
//   hideConsentPrompt()
//   setRecordingState('off' | 'waiting' | 'recording' | 'paused')
//   showWithdraw(onWithdraw) / hideWithdraw()
//   resetRecordingState()   a new call view starts from 'off' without announcing

import { announce } from '../live.js';
import { t } from '../i18n.js';

// Status line (text, never colour alone) for the states where nothing is written.
const STATUS_KEYS = { waiting: 'recording.waiting', paused: 'recording.paused' };

function el(id) { return document.getElementById(id); }

let returnFocus = null;

export function showConsentPrompt({ text = '', lang = '' } = {}, onAnswer = () => {}) {
  const box = el('consent-prompt');
  if (!box) return;
  const body = el('consent-text');
  body.textContent = text;
  if (lang) body.lang = lang; else body.removeAttribute('lang');
  box.setAttribute('aria-describedby', 'consent-text');
  const yes = el('consent-yes');
  const no = el('consent-no');
  yes.onclick = () => { hideConsentPrompt(); onAnswer('yes'); };
  no.onclick = () => { hideConsentPrompt(); onAnswer('no'); };
  const wasHidden = box.hidden;
  box.hidden = false;
  if (wasHidden) {
    // A re-sent prompt (language switch) keeps the focus where the user is.
    returnFocus = document.activeElement instanceof HTMLElement && !box.contains(document.activeElement)
      ? document.activeElement : null;
    yes.focus();
  }
}

export function consentPromptOpen() {
  const box = el('consent-prompt');
  return !!box && !box.hidden;
}

export function hideConsentPrompt() {
  const box = el('consent-prompt');
  if (!box || box.hidden) return;
  const hadFocus = box.contains(document.activeElement);
  box.hidden = true;
  if (hadFocus && returnFocus && returnFocus.isConnected) returnFocus.focus();
  returnFocus = null;
}

let lastState = 'off';

export function resetRecordingState() { lastState = 'off'; }

export function setRecordingState(state) {
  const indicator = el('recording-indicator');
  if (!indicator) return;
  // The indicator means "media is being written": only in 'recording'.
  indicator.hidden = state !== 'recording';
  indicator.dataset.state = state;
  const status = el('recording-status');
  if (status) {
    const key = STATUS_KEYS[state];
    status.hidden = !key;
    if (key) { status.dataset.i18n = key; status.textContent = t(key); }
    status.dataset.state = state;
  }
  if (state === lastState) return;
  if (state === 'recording') announce(t('recording.live.started'));
  else if (lastState === 'recording' && state === 'paused') announce(t('recording.live.paused'));
  else if (state === 'off' && lastState === 'waiting') announce(t('recording.live.cancelled'));
  else if (state === 'off') announce(t('recording.live.stopped'));
  else if (state === 'waiting' && !consentPromptOpen()) announce(t('recording.live.waiting')); // else: the prompt's announcement
  lastState = state;
}

export function showWithdraw(onWithdraw) {
  const button = el('consent-withdraw');
  if (!button) return;
  button.onclick = () => { button.disabled = true; onWithdraw(); };
  button.disabled = false;
  button.hidden = false;
}

export function hideWithdraw() {
  const button = el('consent-withdraw');
  if (button) button.hidden = true;
}
