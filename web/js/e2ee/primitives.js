// WebCrypto building blocks of the E2EE protocol v1: HKDF-SHA256, HMAC-SHA256, P-256 ECDH
// (raw uncompressed public points, Z = the 32-byte x-coordinate), AES-GCM with the 16-byte tag
// appended, SHA-256. Every function takes and returns Uint8Array (keys as raw bytes or CryptoKey).

import { utf8 } from './encoding.js';

const subtle = () => crypto.subtle;

export async function hkdf(ikm, salt, info, length) {
  const base = await subtle().importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  const bits = await subtle().deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: typeof salt === 'string' ? utf8(salt) : salt, info: typeof info === 'string' ? utf8(info) : info },
    base, length * 8);
  return new Uint8Array(bits);
}

export async function hmac(key, data) {
  const k = await subtle().importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await subtle().sign('HMAC', k, data));
}

// Constant-time check (WebCrypto verify).
export async function hmacVerify(key, data, tag) {
  if (!(tag instanceof Uint8Array) || tag.length !== 32) return false;
  const k = await subtle().importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  return subtle().verify('HMAC', k, tag, data);
}

export async function sha256(data) { return new Uint8Array(await subtle().digest('SHA-256', data)); }

// A fresh P-256 key pair: {privateKey, publicRaw (65 bytes)}.
export async function generateEcdh() {
  const pair = await subtle().generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
  const publicRaw = new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
  return { privateKey: pair.privateKey, publicRaw };
}

// Rejects a point that is not on P-256 (importKey validates it).
export async function ecdh(privateKey, peerPublicRaw) {
  if (!(peerPublicRaw instanceof Uint8Array) || peerPublicRaw.length !== 65 || peerPublicRaw[0] !== 4) {
    throw new TypeError('not a raw uncompressed P-256 point');
  }
  const pub = await subtle().importKey('raw', peerPublicRaw, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  return new Uint8Array(await subtle().deriveBits({ name: 'ECDH', public: pub }, privateKey, 256));
}

export async function aesKey(raw, usages = ['encrypt', 'decrypt']) {
  return subtle().importKey('raw', raw, 'AES-GCM', false, usages);
}

export async function aesGcmEncrypt(key, iv, plaintext, aad) {
  const k = key instanceof Uint8Array ? await aesKey(key) : key;
  return new Uint8Array(await subtle().encrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, k, plaintext));
}

// Throws (OperationError) when authentication fails.
export async function aesGcmDecrypt(key, iv, ciphertext, aad) {
  const k = key instanceof Uint8Array ? await aesKey(key) : key;
  return new Uint8Array(await subtle().decrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, k, ciphertext));
}
