// Microphone level with a WebAudio AnalyserNode, drawn into a <meter> element.
export class AudioMeter {
  constructor(meterEl) {
    this.meterEl = meterEl;
    this.ctx = null;
    this.source = null;
    this.analyser = null;
    this.frame = 0;
    this.level = 0;
    this.peak = 0;
  }

  attach(stream) {
    this.detach();
    const track = stream && stream.getAudioTracks()[0];
    if (!track) return;
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!this.ctx) this.ctx = new Ctx();
    this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.source.connect(this.analyser);
    const data = new Float32Array(this.analyser.fftSize);
    const tick = () => {
      this.analyser.getFloatTimeDomainData(data);
      let sum = 0;
      for (const v of data) sum += v * v;
      const rms = Math.sqrt(sum / data.length);
      // Speech RMS ~0.02-0.3: map to 0..1 on a rough log scale.
      this.level = Math.max(0, Math.min(1, (20 * Math.log10(rms + 1e-6) + 60) / 50));
      this.peak = Math.max(this.peak, this.level);
      if (this.meterEl) this.meterEl.value = this.level;
      this.frame = window.requestAnimationFrame(tick);
    };
    this.resume();
    tick();
  }

  resume() { if (this.ctx && this.ctx.state === 'suspended') this.ctx.resume().catch(() => {}); }

  detach() {
    if (this.frame) window.cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (this.source) this.source.disconnect();
    this.source = null;
    this.analyser = null;
    if (this.meterEl) this.meterEl.value = 0;
  }

  close() {
    this.detach();
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
  }
}
