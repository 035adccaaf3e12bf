// The derivations and messages of the E2EE protocol v1 (docs/e2ee.md), shared by the key manager
// and the unit checks: link id and k_auth from a link secret, announce/vouch authenticators, the
// pairwise key, `key` message encryption, the safety code, and recording-key escrow.

import { b64encode, concat, lp, randomBytes, u32be, utf8 } from './encoding.js';
import { aesGcmDecrypt, aesGcmEncrypt, ecdh, generateEcdh, hkdf, hmac, hmacVerify, sha256 } from './primitives.js';

const EMPTY = new Uint8Array(0);

export const linkIdOf = (s) => hkdf(s, EMPTY, 'tc-e2ee/v1/link-id', 8);
export const authKeyOf = (s, cid) => hkdf(s, utf8(cid), 'tc-e2ee/v1/auth', 32);

const announceData = (cid, pid, role, pub) => lp('tc-e2ee/v1/announce', cid, pid, role, pub);
const vouchData = (cid, pid, role, pub) => lp('tc-e2ee/v1/vouch', cid, pid, role, pub);

export const announceAuth = (kAuth, cid, pid, role, pub) => hmac(kAuth, announceData(cid, pid, role, pub));
export const verifyAnnounce = (kAuth, cid, pid, role, pub, tag) => hmacVerify(kAuth, announceData(cid, pid, role, pub), tag);
export const vouchAuth = (kAuth, cid, pid, role, pub) => hmac(kAuth, vouchData(cid, pid, role, pub));
export const verifyVouch = (kAuth, cid, pid, role, pub, tag) => hmacVerify(kAuth, vouchData(cid, pid, role, pub), tag);

// K_pair between two participants (the same on both sides).
export async function pairKey(privateKey, peerPub, cid, pidA, pidB) {
  const z = await ecdh(privateKey, peerPub);
  const [lo, hi] = pidA < pidB ? [pidA, pidB] : [pidB, pidA];
  return hkdf(z, utf8(cid), lp('tc-e2ee/v1/pair', lo, hi), 32);
}

const keyAad = (cid, from, to, keyId) => lp('tc-e2ee/v1/key', cid, from, to, u32be(keyId));

export async function sealMediaKey(kPair, cid, from, to, keyId, mediaKey) {
  const iv = randomBytes(12);
  const ct = await aesGcmEncrypt(kPair, iv, mediaKey, keyAad(cid, from, to, keyId));
  return { iv, ct };
}

export function openMediaKey(kPair, cid, from, to, keyId, iv, ct) {
  return aesGcmDecrypt(kPair, iv, ct, keyAad(cid, from, to, keyId));
}

// entries: [{pid, pub: Uint8Array}] — every accepted participant including oneself.
export async function safetyCode(cid, entries) {
  const sorted = [...entries].sort((a, b) => (a.pid < b.pid ? -1 : a.pid > b.pid ? 1 : 0));
  const parts = ['tc-e2ee/v1/safety', cid];
  for (const e of sorted) parts.push(e.pid, e.pub);
  const digest = await sha256(lp(...parts));
  let n = 0n;
  for (let i = 0; i < 6; i += 1) n = (n << 8n) | BigInt(digest[i]);
  const digits = (n % 1000000000000n).toString().padStart(12, '0');
  return digits.match(/.{3}/g).join(' ');
}

export async function fingerprintOf(pubRaw) {
  const digest = await sha256(pubRaw);
  return [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// A `recording-key` message body for one media key, wrapped to the clinic's recording key under
// a fresh ephemeral key pair (`fixed` {eph, iv}: test vectors only).
export async function escrowMediaKey(clinicPub, cid, sender, keyId, mediaKey, fixed = null) {
  const eph = fixed ? fixed.eph : await generateEcdh();
  const z = await ecdh(eph.privateKey, clinicPub);
  const info = lp('tc-e2ee/v1/escrow', cid, sender, u32be(keyId));
  const k = await hkdf(z, eph.publicRaw, info, 32);
  const iv = fixed ? fixed.iv : randomBytes(12);
  const ct = await aesGcmEncrypt(k, iv, mediaKey, info);
  return { sender, key_id: keyId, epk: b64encode(eph.publicRaw), iv: b64encode(iv), ct: b64encode(ct) };
}

export { concat };
