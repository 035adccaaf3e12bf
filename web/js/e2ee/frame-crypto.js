// Per-frame encryption of the E2EE protocol v1 (docs/e2ee.md "Frame format"):
//   frame = clear || ciphertext||tag(16) || iv(12) || key_id u32be || 0xE1
// clear = the first n = min(len, N) bytes: VP8 N = 10 on a keyframe (data[0] & 1 == 0), else 3;
// Opus N = 1. aad = clear || u32be(key_id) || 0xE1. iv = 4-byte salt (random per key) || u64be
// counter from 0, +1 per frame across all of this sender's tracks.
// Used by the frame Worker (frame-worker.js); importable in a page for unit checks.

import { randomBytes } from './encoding.js';

export const MAGIC = 0xe1;
export const TRAILER = 16 + 12 + 4 + 1; // tag, iv, key id, magic
export const RETAIN_MS = 10000;

export function clearLength(kind, firstByte, available) {
  const n = kind === 'audio' ? 1 : ((firstByte & 1) === 0 ? 10 : 3);
  return Math.min(n, available);
}

// The sender's key: {keyId, key: CryptoKey, salt: 4 bytes, counter}.
export async function makeSendKey(keyId, raw) {
  const key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt']);
  return { keyId, key, salt: randomBytes(4), counter: 0 };
}

function trailerBytes(clear, keyId) {
  const aad = new Uint8Array(clear.length + 5);
  aad.set(clear, 0);
  new DataView(aad.buffer).setUint32(clear.length, keyId, false);
  aad[clear.length + 4] = MAGIC;
  return aad;
}

export async function encryptFrame(sendKey, kind, data) {
  const n = data.length ? clearLength(kind, data[0], data.length) : 0;
  const clear = data.subarray(0, n);
  const iv = new Uint8Array(12);
  iv.set(sendKey.salt, 0);
  const counter = sendKey.counter;
  sendKey.counter += 1;
  const view = new DataView(iv.buffer);
  view.setUint32(4, Math.floor(counter / 0x100000000), false);
  view.setUint32(8, counter >>> 0, false);
  const aad = trailerBytes(clear, sendKey.keyId);
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, sendKey.key, data.subarray(n)));
  const out = new Uint8Array(n + sealed.length + 12 + 5);
  out.set(clear, 0);
  out.set(sealed, n);
  out.set(iv, n + sealed.length);
  out.set(aad.subarray(n), n + sealed.length + 12);
  return out;
}

// Receiver keys: key_id -> {key, sender, seq, used, retireAt}. A sender's older keys are kept
// RETAIN_MS after its newer key is first used, then forgotten.
export class ReceiveKeys {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.keys = new Map();
    this.seq = 0;
  }

  async add(sender, keyId, raw) {
    const key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']);
    this.seq += 1;
    this.keys.set(keyId, { key, sender, seq: this.seq, used: false, retireAt: null });
  }

  forgetSender(sender) {
    for (const [id, entry] of this.keys) if (entry.sender === sender) this.keys.delete(id);
  }

  lookup(keyId) {
    const entry = this.keys.get(keyId);
    if (!entry) return null;
    if (entry.retireAt !== null && this.now() > entry.retireAt) { this.keys.delete(keyId); return null; }
    return entry;
  }

  markUsed(entry) {
    if (entry.used) return;
    entry.used = true;
    const until = this.now() + RETAIN_MS;
    for (const other of this.keys.values()) {
      if (other.sender === entry.sender && other.seq < entry.seq && other.retireAt === null) other.retireAt = until;
    }
  }
}

// -> {data} on success, or {drop: 'format' | 'no_key' | 'auth'}.
export async function decryptFrame(keys, kind, data) {
  const len = data.length;
  if (len < TRAILER || data[len - 1] !== MAGIC) return { drop: 'format' };
  const keyId = new DataView(data.buffer, data.byteOffset + len - 5, 4).getUint32(0, false);
  const entry = keys.lookup(keyId);
  if (!entry) return { drop: 'no_key' };
  const body = len - TRAILER; // clear + plaintext rest
  const n = body ? clearLength(kind, data[0], body) : 0;
  const clear = data.subarray(0, n);
  const sealed = data.subarray(n, len - 17);
  const iv = data.subarray(len - 17, len - 5);
  const aad = trailerBytes(clear, keyId);
  let rest;
  try {
    rest = new Uint8Array(await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, entry.key, sealed));
  } catch {
    return { drop: 'auth' };
  }
  keys.markUsed(entry);
  const out = new Uint8Array(n + rest.length);
  out.set(clear, 0);
  out.set(rest, n);
  return { data: out, sender: entry.sender };
}
