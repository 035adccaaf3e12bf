// End-to-end encryption in the call view: the "End-to-end encrypted" indicator while it holds
// (it covers every track, the shared screen included), the safety code (the same on every
// screen of the call), the "not verified" warning naming unverified participants, the host's
// "could not verify" warning, the "not end-to-end encrypted" notice in hop mode, and, for the
// host, the clinic recording key's fingerprint beside the Record control.
//
//   const e2ee = wireE2ee(session, root, {isHost});  ...  e2ee.destroy();

import { h, relabel } from '../dom.js';
import { onLanguageChange, t } from '../i18n.js';
import { announce } from '../live.js';

export function wireE2ee(session, root, { isHost }) {
  const $ = (sel) => root.querySelector(sel);
  const indicator = h('span', { id: 'e2ee-indicator', class: 'e2ee-badge', hidden: true, role: 'status', 'i18n-title': 'e2ee.threatNote' },
    h('span', { class: 'e2ee-lock', 'aria-hidden': 'true' }), h('span', { i18n: 'e2ee.on' }));
  const hop = h('span', { id: 'e2ee-hop', class: 'e2ee-badge off', hidden: true, role: 'status' }, h('span', { i18n: 'e2ee.hop' }));
  const code = h('span', { id: 'e2ee-code', class: 'e2ee-code', hidden: true, 'i18n-title': 'e2ee.codeHint' },
    h('span', { i18n: 'e2ee.code' }), ' ', h('strong', { id: 'e2ee-code-value', class: 'e2ee-digits' }));
  const unverified = h('p', { id: 'e2ee-unverified', class: 'e2ee-warning', hidden: true, role: 'alert' });
  const rejected = h('p', { id: 'e2ee-rejected', class: 'e2ee-warning danger', hidden: true, role: 'alert' });
  const pending = h('p', { id: 'e2ee-pending', class: 'e2ee-warning pending', hidden: true, role: 'status' });
  const fingerprint = isHost ? h('span', { id: 'recording-key-fp', class: 'e2ee-fp', hidden: true }) : null;
  const group = h('div', { id: 'e2ee-bar', class: 'e2ee-bar' }, indicator, hop, code);
  $('.call-status').prepend(group);
  const bar = $('#recording-bar');
  if (fingerprint && bar) bar.append(fingerprint);
  const banner = h('div', { id: 'e2ee-warnings', class: 'e2ee-warnings' }, pending, unverified, rejected);
  $('.call-status').after(banner);
  relabel(indicator, {});
  relabel(code, {});
  relabel(hop, {});

  let status = session.e2ee.status();
  let wasActive = false;

  const names = (pids) => pids.map((pid) => session.nameOf(pid) || t('e2ee.someone')).join(', ');

  function render() {
    const s = status;
    const keys = s.keys;
    indicator.hidden = !s.active;
    indicator.dataset.verified = String(!!keys && keys.unverified.length === 0 && keys.pending.length === 0);
    hop.hidden = s.mode === 'e2ee';
    const showCode = s.active && !!keys && keys.safetyCode && keys.peers.some((p) => p.state === 'verified' || p.state === 'unverified');
    code.hidden = !showCode;
    $('#e2ee-code-value').textContent = showCode ? keys.safetyCode : '';
    const unv = s.active && keys ? keys.unverified.filter((pid) => session.participants.has(pid)) : [];
    unverified.hidden = unv.length === 0;
    if (unv.length) unverified.textContent = t('e2ee.unverified', { names: names(unv) });
    unverified.dataset.participants = unv.join(',');
    const rej = keys ? keys.rejected.filter((pid) => session.participants.has(pid)) : [];
    rejected.hidden = rej.length === 0;
    if (rej.length) rejected.textContent = t('e2ee.rejected', { names: names(rej) });
    rejected.dataset.participants = rej.join(',');
    // Present in the call, but no key exchanged yet (their frames cannot be shown until then).
    const settled = new Set(keys ? keys.peers.filter((p) => p.state !== 'pending').map((p) => p.pid) : []);
    const waiting = s.active ? [...session.participants.keys()].filter((pid) => pid !== session.selfId && !settled.has(pid)) : [];
    pending.hidden = waiting.length === 0;
    if (waiting.length) pending.textContent = t('e2ee.pending', { names: names(waiting) });
    pending.dataset.participants = waiting.join(',');
    if (fingerprint) {
      const rk = s.recordingKey;
      fingerprint.hidden = !rk;
      if (rk) {
        fingerprint.textContent = t(rk.matchesServer ? 'e2ee.recordingKey' : 'e2ee.recordingKeyMismatch', { fingerprint: rk.fingerprint });
        fingerprint.dataset.fingerprint = rk.fingerprint;
      }
    }
    if (s.active !== wasActive) announce(t(s.active ? 'e2ee.live.on' : 'e2ee.live.off'));
    wasActive = s.active;
  }

  const onStatus = (e) => { status = e.detail; render(); };
  const onParticipants = () => render();
  session.addEventListener('e2ee', onStatus);
  session.addEventListener('participants', onParticipants);
  const offLang = onLanguageChange(render);
  wasActive = false;
  render();

  return {
    destroy() {
      session.removeEventListener('e2ee', onStatus);
      session.removeEventListener('participants', onParticipants);
      offLang();
    },
  };
}
