// One RTCPeerConnection per connection to the SFU (DESIGN D3b): the browser offers ONCE, at
// join, with its microphone and camera (sendrecv) and a complete description (after ICE
// gathering); afterwards it only answers the server's offers. To publish a screen the browser
// asks the server to `renegotiate` {publish: [..., "screen"]}; the server's next offer lists the
// mid to send it on under `receive`, and the browser puts the screen track on that transceiver.
//
// End-to-end encryption: when the session gives a FrameCrypto (e2ee/media-transforms.js), every
// sender (microphone, camera, screen) and every receiver goes through its Worker.
//
// Stopping media: the microphone mute uses track.enabled = false (silence, instant, no
// renegotiation); the camera off uses sender.replaceTrack(null) and stops the camera track, so
// the camera light goes off; camera on takes a fresh track with replaceTrack.

const GATHER_TIMEOUT_MS = 5000;

function waitForGathering(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = window.setTimeout(done, GATHER_TIMEOUT_MS);
    function done() {
      window.clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() { if (pc.iceGatheringState === 'complete') done(); }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function preferCodec(transceiver, kind, mimeType) {
  if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return;
  const caps = RTCRtpReceiver.getCapabilities(kind);
  if (!caps) return;
  const wanted = caps.codecs.filter((c) => c.mimeType.toLowerCase() === mimeType);
  const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== mimeType);
  if (wanted.length) {
    try { transceiver.setCodecPreferences([...wanted, ...rest]); } catch { /* keep defaults */ }
  }
}

export class Peer extends EventTarget {
  // frames: a FrameCrypto or null; iceTransportPolicy: 'all' | 'relay' (the server's setting);
  // configure(base) -> RTCPeerConnection config (E2EE may add to it).
  constructor(iceServers, send, { frames = null, iceTransportPolicy = 'all', configure = (c) => c } = {}) {
    super();
    this.send = send;
    this.frames = frames;
    this.pc = new RTCPeerConnection(configure({ iceServers: iceServers || [], iceTransportPolicy, bundlePolicy: 'max-bundle' }));
    this.audioTransceiver = null;
    this.videoTransceiver = null;
    this.screenTransceiver = null;
    this.queue = Promise.resolve();
    this.pc.addEventListener('track', (event) => {
      if (this.frames) this.frames.attachReceiver(event.receiver);
      this.dispatchEvent(new CustomEvent('track', { detail: event }));
    });
    this.pc.addEventListener('connectionstatechange', () => {
      this.dispatchEvent(new CustomEvent('state', { detail: this.pc.connectionState }));
    });
  }

  // Serialise every description change.
  enqueue(fn) {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  // The one browser offer, built ahead of time if possible (e.g. while the patient waits to be
  // admitted): audio + video sendrecv, local description set, ICE gathering complete.
  prepare(audioTrack, videoTrack, stream) {
    if (!this.prepared) {
      this.preparedAt = Date.now();
      this.prepared = this.enqueue(async () => {
        if (this.frames) await this.frames.ready; // transforms attached before the Worker runs carry nothing
        const streams = stream ? [stream] : [];
        this.audioTransceiver = this.pc.addTransceiver(audioTrack || 'audio', { direction: 'sendrecv', streams });
        this.videoTransceiver = this.pc.addTransceiver(videoTrack || 'video', { direction: 'sendrecv', streams });
        if (this.frames) {
          this.frames.attachSender(this.audioTransceiver.sender, 'audio');
          this.frames.attachSender(this.videoTransceiver.sender, 'video');
        }
        preferCodec(this.audioTransceiver, 'audio', 'audio/opus');
        preferCodec(this.videoTransceiver, 'video', 'video/vp8');
        await this.pc.setLocalDescription(await this.pc.createOffer());
        await waitForGathering(this.pc);
      });
    }
    return this.prepared;
  }

  // Send the one offer (prepared now if it was not already). restart: this peer connection
  // replaces the session's previous one (docs/api.md "Reconnecting").
  start(audioTrack, videoTrack, stream, { restart = false } = {}) {
    this.prepare(audioTrack, videoTrack, stream);
    return this.enqueue(async () => {
      this.send('offer', { sdp: this.pc.localDescription.sdp, ...(restart ? { restart: true } : {}) });
    });
  }

  handleAnswer(sdp) {
    return this.enqueue(() => this.pc.setRemoteDescription({ type: 'answer', sdp }));
  }

  // screenMid: the mid the server listed under `receive` as "screen" (we send the screen there).
  handleOffer(sdp, screenMid = null, screenTrack = null) {
    return this.enqueue(async () => {
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      if (screenMid != null) {
        const tr = this.pc.getTransceivers().find((x) => x.mid === String(screenMid));
        if (tr) {
          this.screenTransceiver = tr;
          if (this.frames) this.frames.attachSender(tr.sender, 'video');
          await tr.sender.replaceTrack(screenTrack || null);
          tr.direction = 'sendonly';
        }
      } else if (this.screenTransceiver && this.screenTransceiver.direction === 'sendonly') {
        this.screenTransceiver.direction = 'inactive';
      }
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      await waitForGathering(this.pc);
      this.send('answer', { sdp: this.pc.localDescription.sdp });
    });
  }

  setMicEnabled(track, enabled) { if (track) track.enabled = enabled; }

  async replaceVideo(track) {
    if (this.videoTransceiver) await this.videoTransceiver.sender.replaceTrack(track);
  }

  async replaceAudio(track) {
    if (this.audioTransceiver) await this.audioTransceiver.sender.replaceTrack(track);
  }

  // The screen goes on the m-section the server opened for it (see handleOffer).
  async setScreenTrack(track) {
    if (this.screenTransceiver) await this.screenTransceiver.sender.replaceTrack(track);
  }

  close() {
    try { this.pc.close(); } catch { /* already closed */ }
  }
}
