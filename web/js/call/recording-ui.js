// Hooks for the recording feature (server/recording): the consent prompt and the recording
// indicator. The call view owns the markup (#consent-prompt, #recording-indicator); the
// recording code calls these functions when `consent-prompt` / `recording-state` arrive.
//
//   showConsentPrompt({text, textVersion}, onAnswer)   onAnswer('yes' | 'no')
//   hideConsentPrompt()
//   setRecordingState('off' | 'waiting' | 'recording' | 'paused')
//   showWithdraw(onWithdraw) / hideWithdraw()

import { announce } from '../live.js';
import { t } from '../i18n.js';

function el(id) { return document.getElementById(id); }

export function showConsentPrompt({ text = '' } = {}, onAnswer = () => {}) {
  const box = el('consent-prompt');
  if (!box) return;
  el('consent-text').textContent = text;
  const yes = el('consent-yes');
  const no = el('consent-no');
  yes.onclick = () => { hideConsentPrompt(); onAnswer('yes'); };
  no.onclick = () => { hideConsentPrompt(); onAnswer('no'); };
  box.hidden = false;
  yes.focus();
}

export function hideConsentPrompt() {
  const box = el('consent-prompt');
  if (box) box.hidden = true;
}

let lastState = 'off';
export function setRecordingState(state) {
  const indicator = el('recording-indicator');
  if (!indicator) return;
  indicator.hidden = state !== 'recording' && state !== 'paused';
  indicator.dataset.state = state;
  if (state === 'recording' && lastState !== 'recording') announce(t('live.recordingStarted'));
  if (state !== 'recording' && lastState === 'recording') announce(t('live.recordingStopped'));
  lastState = state;
}

export function showWithdraw(onWithdraw) {
  const button = el('consent-withdraw');
  if (!button) return;
  button.onclick = () => onWithdraw();
  button.hidden = false;
}

export function hideWithdraw() {
  const button = el('consent-withdraw');
  if (button) button.hidden = true;
}
