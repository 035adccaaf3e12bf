// Connection quality from getStats: packet loss of what we receive, the round trip time and the
// incoming bitrate (kbit/s, every inbound stream). good: loss < 2 % and rtt < 300 ms; fair:
// loss < 8 % and rtt < 600 ms; otherwise poor. network-quality.js shows it per participant.

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
    let bytes = 0;
    let rtt = null;
    const at = performance.now();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        received += s.packetsReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        bytes += s.bytesReceived || 0;
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && s.currentRoundTripTime != null) {
        rtt = s.currentRoundTripTime * 1000;
      } else if (s.type === 'remote-inbound-rtp' && rtt == null && s.roundTripTime != null) {
        rtt = s.roundTripTime * 1000;
      }
    });
    let lossPct = null;
    let kbpsIn = null;
    if (this.prev) {
      const dr = received - this.prev.received;
      const dl = lost - this.prev.lost;
      if (dr + dl > 0) lossPct = (100 * dl) / (dr + dl);
      else lossPct = 0;
      const seconds = (at - this.prev.at) / 1000;
      if (seconds > 0 && bytes >= this.prev.bytes) kbpsIn = (8 * (bytes - this.prev.bytes)) / 1000 / seconds;
    }
    this.prev = { received, lost, bytes, at };
    const sample = { lossPct, rttMs: rtt, kbpsIn, quality: classify(lossPct, rtt) };
    this.onSample(sample);
  }
}
