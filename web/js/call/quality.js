// Connection quality from getStats: packet loss of what we receive and the round trip time.
// good: loss < 2 % and rtt < 300 ms; fair: loss < 8 % and rtt < 600 ms; otherwise poor.

export function classify(lossPct, rttMs) {
  if (lossPct == null && rttMs == null) return 'unknown';
  const loss = lossPct || 0;
  const rtt = rttMs || 0;
  if (loss < 2 && rtt < 300) return 'good';
  if (loss < 8 && rtt < 600) return 'fair';
  return 'poor';
}

export class QualityMonitor {
  constructor(getPc, onSample, intervalMs = 2000) {
    this.getPc = getPc;
    this.onSample = onSample;
    this.intervalMs = intervalMs;
    this.timer = 0;
    this.prev = null;
  }

  start() {
    this.stop();
    this.timer = window.setInterval(() => { this.sample().catch(() => {}); }, this.intervalMs);
  }

  stop() {
    if (this.timer) window.clearInterval(this.timer);
    this.timer = 0;
    this.prev = null;
  }

  async sample() {
    const pc = this.getPc();
    if (!pc || pc.connectionState === 'closed') return;
    const stats = await pc.getStats();
    let received = 0;
    let lost = 0;
    let rtt = null;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        received += s.packetsReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && s.currentRoundTripTime != null) {
        rtt = s.currentRoundTripTime * 1000;
      } else if (s.type === 'remote-inbound-rtp' && rtt == null && s.roundTripTime != null) {
        rtt = s.roundTripTime * 1000;
      }
    });
    let lossPct = null;
    if (this.prev) {
      const dr = received - this.prev.received;
      const dl = lost - this.prev.lost;
      if (dr + dl > 0) lossPct = (100 * dl) / (dr + dl);
      else lossPct = 0;
    }
    this.prev = { received, lost };
    const sample = { lossPct, rttMs: rtt, quality: classify(lossPct, rtt) };
    this.onSample(sample);
  }
}
