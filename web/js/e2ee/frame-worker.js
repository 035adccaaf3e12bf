// The frame-crypto Worker (module worker): one per call, shared by every sender and receiver of
// the page, so one IV counter covers all of a sender's tracks. Frames reach it through
// RTCRtpScriptTransform (`rtctransform` event; options {side, kind}) or, where only Chromium's
// legacy API exists, as transferred streams from createEncodedStreams() ({type: 'streams'}).
//
// Page -> worker: {type:'mode', mode:'e2ee'|'hop'|'blocked'}, {type:'send-key', keyId, raw},
// {type:'recv-key', sender, keyId, raw}, {type:'forget', sender}, {type:'stats', id}; handled in
// order (key imports are asynchronous). Worker -> page: {type:'stats', id, stats}.
//
// mode 'e2ee': senders encrypt (and drop while they have no key: never plaintext); receivers
// decrypt, and drop + count anything that is not an intact frame under a known key. 'hop': frames
// pass through both ways. 'blocked': everything is dropped (refused key exchange).

import { ReceiveKeys, decryptFrame, encryptFrame, makeSendKey } from './frame-crypto.js';

let mode = 'e2ee';
let sendKey = null;
const recvKeys = new ReceiveKeys();
const stats = {
  encrypted: 0, decrypted: 0, passed: 0, dropped_auth: 0, dropped_no_key: 0, dropped_format: 0,
  dropped_unkeyed_send: 0, dropped_blocked: 0, video_decrypted: 0, audio_decrypted: 0, keyframes_decrypted: 0,
};

function pipe(readable, writable, side, kind) {
  const transform = side === 'send'
    ? (frame, controller) => sendFrame(frame, controller, kind)
    : (frame, controller) => receiveFrame(frame, controller, kind);
  readable.pipeThrough(new TransformStream({ transform })).pipeTo(writable).catch(() => {});
}

async function sendFrame(frame, controller, kind) {
  if (mode === 'hop') { stats.passed += 1; controller.enqueue(frame); return; }
  if (mode === 'blocked') { stats.dropped_blocked += 1; return; }
  const key = sendKey;
  if (!key) { stats.dropped_unkeyed_send += 1; return; }
  frame.data = (await encryptFrame(key, kind, new Uint8Array(frame.data))).buffer;
  stats.encrypted += 1;
  controller.enqueue(frame);
}

async function receiveFrame(frame, controller, kind) {
  if (mode === 'hop') { stats.passed += 1; controller.enqueue(frame); return; }
  if (mode === 'blocked') { stats.dropped_blocked += 1; return; }
  const data = new Uint8Array(frame.data);
  const result = await decryptFrame(recvKeys, kind, data);
  if (result.drop) { stats[`dropped_${result.drop}`] += 1; return; }
  frame.data = result.data.buffer;
  stats.decrypted += 1;
  stats[`${kind}_decrypted`] += 1;
  if (kind === 'video' && (result.data[0] & 1) === 0) stats.keyframes_decrypted += 1;
  controller.enqueue(frame);
}

function kindOf(options) { return options && options.kind === 'audio' ? 'audio' : 'video'; }

self.addEventListener('rtctransform', (event) => {
  const t = event.transformer;
  pipe(t.readable, t.writable, t.options.side, kindOf(t.options));
});

let queue = Promise.resolve();

self.addEventListener('message', (event) => {
  const msg = event.data || {};
  queue = queue.then(() => handle(msg)).catch(() => {});
});

async function handle(msg) {
  switch (msg.type) {
    case 'streams': pipe(msg.readable, msg.writable, msg.side, kindOf(msg)); break;
    case 'mode': mode = msg.mode; break;
    case 'send-key': sendKey = await makeSendKey(msg.keyId, msg.raw); break;
    case 'recv-key': await recvKeys.add(msg.sender, msg.keyId, msg.raw); break;
    case 'forget': recvKeys.forgetSender(msg.sender); break;
    case 'stats': self.postMessage({ type: 'stats', id: msg.id, stats: { ...stats, mode, sendKeyId: sendKey ? sendKey.keyId : 0 } }); break;
    default: break;
  }
}

// A module worker runs its code only once its imports are loaded; an `rtctransform` event fired
// before that would find no listener and that sender or receiver would carry nothing. The page
// attaches transforms only after this message (FrameCrypto.ready).
self.postMessage({ type: 'ready' });
