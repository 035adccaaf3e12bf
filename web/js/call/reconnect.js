// Network changes (issue #15; docs/api.md "Reconnecting"): when to recover a call, and how,
// without a reload. The call session owns one Reconnector and does what it decides:
//
// - the peer connection: 'failed' -> recover now; 'disconnected' -> probe the socket at once,
//   recover if the connection is not back within DISCONNECTED_GRACE_MS;
// - the `online` event and navigator.connection 'change' (another network) -> probe the socket;
// - the socket: a `ping` every HEARTBEAT_MS while connected; nothing at all from the server for
//   SILENT_MS means it is dead (a socket on an address that no longer exists never closes);
// - the media path: the bytes the peer connection's candidate pairs received (media, RTCP, STUN;
//   the SFU sends RTCP about our own streams even when nobody else sends), read every
//   PATH_SAMPLE_MS; none for PATH_SILENT_MS -> probe the socket. Chromium still says
//   'connected' ~7 s after its address went away, and 'disconnected' only then.
//
// A probe is a `ping` answered (by anything) within PROBE_MS. Recovering: a dead socket ->
// session.reconnectSocket() (a new socket, hello {resume: true}; the server holds our place
// and says `media-resumed`; a peer connection that is connected and still receives is kept); a
// live socket with a dead peer connection -> session.restartMedia() (a new peer connection on
// the same socket: offer {restart: true}; aiortc has no ICE restart). A silent path with a live
// socket is left to the peer connection's own state (a short cut that ICE survives).

const HEARTBEAT_MS = 2000;
const SILENT_MS = 5000;
const PROBE_MS = 1000;
const PATH_SAMPLE_MS = 250;
const PATH_SILENT_MS = 1000;
const DISCONNECTED_GRACE_MS = 2000;

export class Reconnector {
  constructor(session) {
    this.session = session;
    this.lastHeard = performance.now();
    this.heartbeat = 0;
    this.graceTimer = 0;
    this.probing = null; // {promise, resolve}
    this.pathTimer = 0;
    this.path = { pc: null, bytes: 0, at: performance.now(), known: false, told: false };
    this.onOnline = () => this.probeThenRecover(false);
    window.addEventListener('online', this.onOnline);
    this.connection = navigator.connection || null;
    if (this.connection && this.connection.addEventListener) this.connection.addEventListener('change', this.onOnline);
  }

  // Any message from the server: the socket lives.
  heard() {
    this.lastHeard = performance.now();
    if (this.probing) { const { resolve } = this.probing; this.probing = null; resolve(true); }
  }

  // The socket is open (welcome received): watch it.
  watchSocket() {
    this.heard();
    window.clearInterval(this.heartbeat);
    this.heartbeat = window.setInterval(() => this.beat(), HEARTBEAT_MS);
    if (!this.pathTimer) this.pathTimer = window.setInterval(() => this.samplePath(), PATH_SAMPLE_MS);
  }

  async samplePath() {
    const pc = this.session.pc;
    if (!pc || !this.session.joined) return;
    let bytes = 0;
    try {
      (await pc.getStats()).forEach((s) => { if (s.type === 'candidate-pair') bytes += s.bytesReceived || 0; });
    } catch { return; }
    const path = this.path;
    const now = performance.now();
    if (pc !== path.pc || bytes > path.bytes) {
      Object.assign(path, { pc, bytes, at: now, known: path.known || bytes > 0, told: false });
    } else if (path.known && !path.told && now - path.at > PATH_SILENT_MS) {
      path.told = true;
      this.probeThenRecover(false);
    }
  }

  // The current peer connection received nothing lately (unknown where stats lack the bytes).
  get pathSilent() {
    const path = this.path;
    return path.known && path.pc === this.session.pc && performance.now() - path.at > PATH_SILENT_MS;
  }

  beat() {
    if (!this.session.signalling) return;
    if (performance.now() - this.lastHeard > SILENT_MS) { this.session.reconnectSocket(); return; }
    this.session.send('ping');
  }

  // Resolves true if the server answers within PROBE_MS.
  probe() {
    if (!this.session.signalling || !this.session.send('ping')) return Promise.resolve(false);
    if (this.probing) return this.probing.promise;
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    const timer = window.setTimeout(() => { if (this.probing && this.probing.promise === promise) { this.probing = null; resolve(false); } }, PROBE_MS);
    this.probing = { promise, resolve: (v) => { window.clearTimeout(timer); resolve(v); } };
    return promise;
  }

  // `mediaDead`: the peer connection failed (else: only look at the socket).
  async probeThenRecover(mediaDead) {
    const session = this.session;
    if (!session.signalling || session.resuming) return; // a new socket is on its way: it decides
    // The heartbeat's last ping went unanswered for longer than a probe: no need to ask again.
    const alive = performance.now() - this.lastHeard <= HEARTBEAT_MS + PROBE_MS && await this.probe();
    if (!alive) session.reconnectSocket();
    else if (mediaDead) session.restartMedia();
  }

  // The current peer connection's connectionState.
  peerState(state) {
    window.clearTimeout(this.graceTimer);
    if (state === 'failed') { this.probeThenRecover(true); return; }
    if (state !== 'disconnected') return;
    this.probeThenRecover(false);
    this.graceTimer = window.setTimeout(() => {
      const pc = this.session.pc;
      if (pc && pc.connectionState !== 'connected') this.probeThenRecover(true);
    }, DISCONNECTED_GRACE_MS);
  }

  // No socket to watch (a new one is being opened).
  pause() {
    window.clearInterval(this.heartbeat);
    window.clearTimeout(this.graceTimer);
  }

  // After `media-resumed`: our place, tracks and keys carry on (a peer connection still
  // connected is kept, else a new one replaces it); not resumed: a fresh join (new keys).
  async resumed(yes) {
    const session = this.session;
    if (!yes) { await session.startMedia(); session.emit('notice', { key: 'live.reconnected' }); return; }
    if (session.pc && session.pc.connectionState === 'connected' && !this.pathSilent) session.backInCall();
    else await this.restartMedia();
  }

  // A new peer connection on the same socket and media session: the frame Worker and its keys
  // carry on (E2EE), the offer says restart.
  async restartMedia() {
    const session = this.session;
    if (session.finished || !session.signalling || session.resuming) return;
    session.setState('reconnecting');
    if (session.peer) session.peer.close();
    session.midInfo.clear();
    const peer = session.newPeer(true);
    session.peer = peer;
    const { stream, audioTrack } = session.local;
    const videoTrack = session.cameraOff ? null : session.local.videoTrack;
    await peer.start(audioTrack || null, videoTrack || null, stream || null, { restart: true });
    if (session.peer === peer && session.screenTrack) session.send('renegotiate', { publish: ['audio', 'video', 'screen'] });
  }

  close() {
    this.pause();
    window.clearInterval(this.pathTimer);
    window.removeEventListener('online', this.onOnline);
    if (this.connection && this.connection.removeEventListener) this.connection.removeEventListener('change', this.onOnline);
    if (this.probing) { const { resolve } = this.probing; this.probing = null; resolve(false); }
  }
}
