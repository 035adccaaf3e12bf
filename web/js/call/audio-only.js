// Audio only (docs/sfu.md "Bandwidth"): the server stops the video sent to a participant whose
// connection cannot take it (reason "bandwidth" or "loss") and tells both screens
// (`audio-only` {participant_id, active, reason}); the video comes back by itself when the
// connection recovers. The "Audio only" button does it by choice (reason "manual"): no video
// received (`receive-video` {enabled: false}) and none sent (the camera's encoding paused, the
// others told it is off); pressed again, both come back. Audio never stops.
//
// Shown as a banner (role=alert, text, not colour) and `data-audio-only` on the call root:
// "self" when this browser receives audio only, "other" when someone else does.

import { announce } from '../live.js';
import { applyI18n, h, icon, relabel } from '../dom.js';
import { onLanguageChange, t } from '../i18n.js';

async function setSending(session, on) {
  const tr = session.peer && session.peer.videoTransceiver;
  if (tr && tr.sender) {
    try {
      const params = tr.sender.getParameters(); // Safari: the same object back (transactionId)
      if (params.encodings && params.encodings.length) {
        params.encodings[0].active = on;
        await tr.sender.setParameters(params);
      }
    } catch (err) { console.warn('camera encoding not changed', err && err.name); }
  }
  if (!session.cameraOff) session.send('mute', { kind: 'video', muted: !on });
}

export function wireAudioOnly(session, root) {
  const banner = h('div', { id: 'audio-only-banner', class: 'banner audio-only-banner', hidden: true, role: 'alert' },
    h('span', { class: 'audio-only-text' }));
  const anchor = root.querySelector('#reconnecting-banner');
  anchor.after(banner);
  const button = h('button', { id: 'btn-audio-only', type: 'button', class: 'control', 'aria-pressed': 'false', 'i18n-aria-label': 'call.audioOnly.on' },
    icon('camera', true), h('span', { class: 'control-label', i18n: 'call.audioOnly.short' }));
  applyI18n(button);
  const hangup = root.querySelector('#btn-hangup');
  hangup.before(button);

  const state = { self: null, others: new Map(), manual: false };
  session.audioOnly = state;

  function render() {
    const text = banner.querySelector('.audio-only-text');
    let message = '';
    if (state.self && state.self.active) {
      message = t(state.self.reason === 'manual' ? 'call.audioOnly.selfManual' : 'call.audioOnly.selfAuto');
      root.dataset.audioOnly = 'self';
    } else {
      const other = [...state.others.entries()].find(([pid, s]) => s.active && session.participants.has(pid));
      if (other) {
        const name = session.nameOf(other[0]);
        message = t(other[1].reason === 'manual' ? 'call.audioOnly.otherManual' : 'call.audioOnly.otherAuto', { name });
        root.dataset.audioOnly = 'other';
      } else {
        delete root.dataset.audioOnly;
      }
    }
    const changed = text.textContent !== message;
    text.textContent = message;
    banner.hidden = !message;
    return changed;
  }

  const onMessage = (e) => {
    const msg = e.detail;
    if (!msg || msg.type !== 'audio-only') return;
    const entry = { active: !!msg.active, reason: String(msg.reason || '') };
    const self = msg.participant_id === session.selfId;
    const was = self ? state.self : state.others.get(msg.participant_id);
    if (self) state.self = entry; else state.others.set(msg.participant_id, entry);
    render();
    if (!entry.active && was && was.active) {
      announce(self ? t('call.audioOnly.back') : t('call.audioOnly.otherBack', { name: session.nameOf(msg.participant_id) }));
    }
  };

  async function toggle() {
    state.manual = !state.manual;
    button.setAttribute('aria-pressed', String(state.manual));
    button.classList.toggle('active', state.manual);
    relabel(button, { 'aria-label': state.manual ? 'call.audioOnly.off' : 'call.audioOnly.on' });
    session.send('receive-video', { enabled: !state.manual });
    await setSending(session, !state.manual);
  }

  const onState = (e) => {
    // after a reconnect the server starts from "video on": tell it again
    if (e.detail === 'in-call' && state.manual) {
      session.send('receive-video', { enabled: false });
      setSending(session, false);
    }
  };
  button.addEventListener('click', () => { toggle(); });
  session.addEventListener('message', onMessage);
  session.addEventListener('participants', render);
  session.addEventListener('state', onState);
  const offLang = onLanguageChange(render);
  return {
    render,
    destroy() {
      session.removeEventListener('message', onMessage);
      session.removeEventListener('participants', render);
      session.removeEventListener('state', onState);
      offLang();
    },
  };
}
