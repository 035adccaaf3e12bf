// Recording in the call view (docs/api.md "Recording"; DESIGN D6): the host's Record / Stop
// buttons, the consent prompt for every other participant (the clinic's text, in the page's
// language), the status line and the "● Recording" indicator (shown only while the server says
// `recording`), a one-click withdrawal, and the announcements in the live region.
//
//   const rec = wireRecording(session, root, {isHost});  ...  rec.destroy();
//
// The server prompts everyone present but the host (the host's request is their consent) and
// anyone joining later; it sends `recording-state` on joining the call and on every change.

import { h, relabel } from '../dom.js';
import { lang, onLanguageChange, t } from '../i18n.js';
import { announce } from '../live.js';
import { formatElapsed } from './elapsed.js';
import {
  consentPromptOpen, hideConsentPrompt, hideWithdraw, resetRecordingState, setRecordingState,
  showConsentPrompt, showWithdraw,
} from './recording-ui.js';

export function wireRecording(session, root, { isHost }) {
  const $ = (sel) => root.querySelector(sel);
  const indicator = $('#recording-indicator');
  const withdraw = $('#consent-withdraw');
  const status = h('span', { id: 'recording-status', class: 'rec-status', hidden: true });
  const record = isHost ? h('button', {
    id: 'btn-record', type: 'button', class: 'rec-action', i18n: 'recording.start', 'i18n-aria-label': 'recording.startLabel',
  }) : null;
  const stop = isHost ? h('button', {
    id: 'btn-record-stop', type: 'button', class: 'rec-action secondary', hidden: true, i18n: 'recording.stop',
  }) : null;
  // How long it has recorded (pauses not counted), beside the indicator.
  const clock = h('span', { id: 'recording-timer', class: 'rec-timer', role: 'timer', 'i18n-aria-label': 'recording.timer', hidden: true, text: '0:00' });
  const bar = h('div', { id: 'recording-bar', class: 'rec-bar' }, indicator, clock, status, record, stop, isHost ? null : withdraw);
  $('.call-status').append(bar);

  // Labels from the recording.* keys (the base markup carries older call.* keys).
  relabel(indicator.querySelector('span:not(.rec-dot)'), { text: 'recording.indicator' });
  relabel($('#consent-title'), { text: 'recording.prompt.title' });
  relabel($('#consent-yes'), { text: 'recording.prompt.yes' });
  relabel($('#consent-no'), { text: 'recording.prompt.no' });
  relabel(withdraw, { text: 'recording.withdraw', 'aria-label': 'recording.withdrawLabel' });
  $('#consent-prompt').classList.add('consent-prompt');
  if (record) { relabel(record, {}); relabel(stop, {}); }

  let state = 'off';
  let prompt = null; // the current consent-prompt message
  let languageSent = false;
  let acted = false; // the host just pressed Record or Stop
  resetRecordingState();
  setRecordingState('off');
  hideWithdraw();

  const send = (type, fields) => {
    if (!session.send(type, fields)) announce(t('recording.failed'));
  };

  function sendLanguage() { languageSent = session.send('language', { lang: lang() }); }

  let recordedMs = 0;
  let since = 0; // when the current recording stretch began (0: not recording)
  const ticker = window.setInterval(() => { if (since) showClock(); }, 1000);
  function showClock() { clock.textContent = formatElapsed(recordedMs + (since ? Date.now() - since : 0)); }
  function runClock() {
    if (state === 'recording' && !since) since = Date.now();
    if (state !== 'recording' && since) { recordedMs += Date.now() - since; since = 0; }
    if (state === 'off') recordedMs = 0;
    clock.hidden = state === 'off' || state === 'waiting';
    showClock();
  }

  function render() {
    setRecordingState(state);
    runClock();
    if (state === 'off' || state === 'recording') { hideConsentPrompt(); prompt = null; }
    if (record) {
      // Record and Stop take each other's place: keep the keyboard focus on the one shown.
      // (a disabled button loses the focus: `acted` remembers the user was on one of them).
      const focused = acted || document.activeElement === record || document.activeElement === stop;
      acted = false;
      record.hidden = state !== 'off';
      record.disabled = false;
      stop.hidden = state === 'off';
      stop.disabled = false;
      // While consent is pending the button withdraws the request: say so.
      const stopKey = state === 'waiting' ? 'recording.cancelRequest' : 'recording.stop';
      if (stop.dataset.i18n !== stopKey) { stop.dataset.i18n = stopKey; stop.textContent = t(stopKey); }
      if (focused) (record.hidden ? stop : record).focus();
    } else if (state !== 'off' && !consentPromptOpen()) {
      showWithdraw(() => send('consent-withdraw'));
    } else {
      hideWithdraw();
    }
  }

  function onPrompt(msg) {
    prompt = msg;
    hideWithdraw();
    showConsentPrompt({ text: msg.text || '', lang: msg.lang || '' }, (answer) => {
      const asked = prompt;
      prompt = null;
      send('consent', { answer, request_id: asked ? asked.request_id : undefined, text_version: asked ? asked.text_version : undefined });
      if (answer === 'yes') render(); // a "no" stops it: the server's 'off' follows, no withdraw meanwhile
    });
    announce(t('recording.live.prompt'));
  }

  function onMessage(e) {
    const msg = e.detail || {};
    if (msg.type === 'recording-state') {
      if (!languageSent) sendLanguage();
      state = ['off', 'waiting', 'recording', 'paused'].includes(msg.state) ? msg.state : 'off';
      render();
    } else if (msg.type === 'consent-prompt') {
      onPrompt(msg);
    } else if (msg.type === 'error' && record && (record.disabled || stop.disabled)) {
      announce(t('recording.failed'));
      render();
    }
  }

  // After a reconnection the server starts a new media session: tell it the language again.
  function onState() { languageSent = false; }

  if (record) {
    record.addEventListener('click', () => { acted = true; record.disabled = true; send('record-request'); });
    stop.addEventListener('click', () => { acted = true; stop.disabled = true; send('record-stop'); });
  }
  session.addEventListener('message', onMessage);
  session.addEventListener('state', onState);
  const offLang = onLanguageChange(() => { if (languageSent) sendLanguage(); });

  return {
    get state() { return state; },
    destroy() {
      window.clearInterval(ticker);
      session.removeEventListener('message', onMessage);
      session.removeEventListener('state', onState);
      offLang();
    },
  };
}
