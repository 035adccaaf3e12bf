// Attaches the frame-crypto Worker (frame-worker.js) to a peer connection's senders and
// receivers: RTCRtpScriptTransform where it exists (Chromium/Chrome 141+, Firefox 117+, Safari
// 15.4+), else Chromium's legacy createEncodedStreams() (the RTCPeerConnection must then be made
// with `encodedInsertableStreams: true`: see peerConfig()). Safari has only the former.
//
//   const fc = new FrameCrypto('e2ee');  await fc.ready;  fc.attachSender(sender, 'video');  fc.attachReceiver(receiver)
//   fc.setMode('hop');  fc.setSendKey(id, raw);  fc.addReceiveKey(pid, id, raw);  await fc.stats()

const WORKER_URL = '/static/js/e2ee/frame-worker.js';
// Tests may force the legacy path (the only way to exercise it in a browser that has both).
const API_OVERRIDE_KEY = 'tc-e2ee-api';
const READY_TIMEOUT_MS = 5000;

export function transformApi() {
  let forced = null;
  try { forced = localStorage.getItem(API_OVERRIDE_KEY); } catch { /* ignore */ }
  const hasScript = typeof window.RTCRtpScriptTransform === 'function';
  const hasStreams = !!(window.RTCRtpSender && RTCRtpSender.prototype.createEncodedStreams);
  if (forced === 'streams' && hasStreams) return 'streams';
  if (hasScript) return 'script';
  if (hasStreams) return 'streams';
  return null;
}

// Can this browser encrypt frames end to end? (transform API + WebCrypto in a secure context)
export function e2eeSupported() {
  return !!(transformApi() && window.crypto && crypto.subtle && window.isSecureContext !== false && window.Worker);
}

export function peerConfig(base, enabled) {
  return enabled && transformApi() === 'streams' ? { ...base, encodedInsertableStreams: true } : base;
}

export class FrameCrypto {
  constructor(mode) {
    this.api = transformApi();
    this.worker = new Worker(WORKER_URL, { type: 'module', name: 'tc-e2ee-frames' });
    this.attached = new WeakSet();
    this.pending = new Map();
    this.nextId = 1;
    // Resolves when the Worker's code runs (see frame-worker.js); bounded so a call never hangs.
    this.ready = new Promise((resolve) => {
      const timer = window.setTimeout(resolve, READY_TIMEOUT_MS);
      this.markReady = () => { window.clearTimeout(timer); resolve(); };
    });
    this.worker.addEventListener('message', (event) => {
      const msg = event.data || {};
      if (msg.type === 'ready') { this.markReady(); return; }
      const resolve = this.pending.get(msg.id);
      if (resolve) { this.pending.delete(msg.id); resolve(msg.stats); }
    });
    this.setMode(mode);
  }

  post(msg, transfer = []) { this.worker.postMessage(msg, transfer); }

  attach(endpoint, side, kind) {
    if (!endpoint || this.attached.has(endpoint)) return;
    this.attached.add(endpoint);
    if (this.api === 'script') {
      endpoint.transform = new RTCRtpScriptTransform(this.worker, { side, kind });
    } else {
      const { readable, writable } = endpoint.createEncodedStreams();
      this.post({ type: 'streams', side, kind, readable, writable }, [readable, writable]);
    }
  }

  attachSender(sender, kind) { this.attach(sender, 'send', kind); }

  attachReceiver(receiver) { this.attach(receiver, 'recv', receiver.track ? receiver.track.kind : 'video'); }

  setMode(mode) { this.mode = mode; this.post({ type: 'mode', mode }); }

  setSendKey(keyId, raw) { this.post({ type: 'send-key', keyId, raw }); }

  addReceiveKey(sender, keyId, raw) { this.post({ type: 'recv-key', sender, keyId, raw }); }

  forget(sender) { this.post({ type: 'forget', sender }); }

  stats() {
    const id = this.nextId;
    this.nextId += 1;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.post({ type: 'stats', id });
    });
  }

  close() { this.worker.terminate(); }
}
