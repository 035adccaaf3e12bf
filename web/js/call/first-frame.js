// Reports how long this client waited, from entering the call, for its first remote video
// frame decoded and its first remote audio packet: once per kind per page, to
// POST /api/client-metrics (docs/api.md "Operation"). Only the kind and the seconds are sent.

import { api } from '../http.js';

const POLL_MS = 100;
const GIVE_UP_MS = 120000;

function arrived(stat) {
  if (stat.kind === 'video') return (stat.framesDecoded || 0) > 0;
  return (stat.packetsReceived || 0) > 0;
}

export function reportFirstFrames(session) {
  const reported = new Set();
  let startedAt = null;
  const poll = async () => {
    const elapsed = performance.now() - startedAt;
    if (reported.size === 2 || elapsed > GIVE_UP_MS) return;
    const pc = session.pc;
    if (pc && pc.connectionState !== 'closed') {
      try {
        const stats = await pc.getStats();
        stats.forEach((s) => {
          if (s.type !== 'inbound-rtp' || reported.has(s.kind) || !arrived(s)) return;
          reported.add(s.kind);
          const seconds = Math.max(0.001, (performance.now() - startedAt) / 1000);
          api('POST', '/api/client-metrics', { kind: s.kind, seconds }).catch(() => {});
        });
      } catch (err) { /* the connection closed meanwhile */ }
    }
    window.setTimeout(poll, POLL_MS);
  };
  const onState = (state) => {
    if (state !== 'in-call' || startedAt !== null) return;
    startedAt = performance.now();
    window.setTimeout(poll, POLL_MS);
  };
  session.addEventListener('state', (e) => onState(e.detail));
  onState(session.state);
}
