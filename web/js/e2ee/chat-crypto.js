// Chat under E2EE (docs/e2ee.md "Chat"): a message is sealed under a key derived from the
// sender's current media key, which every accepted participant already holds, so one ciphertext
// goes to everyone in the call and the server relays what it cannot read.
//   k_chat = HKDF(ikm = media key, salt = utf8(cid), info = lp("tc-e2ee/v1/chat", sender, u32be(key_id)), L = 32)
//   body   = {kind: "e2ee", key_id, iv: B64(12), ct: B64(AES-256-GCM(k_chat, iv, utf8(text), aad))}
//   aad    = lp("tc-e2ee/v1/chat", cid, sender, u32be(key_id))
// Receivers find (sender, key_id) among their media keys; `sender` is the relay's `from`, so a
// server that rewrites it breaks the tag. In mode "hop" the body is {kind: "plain", text}; a
// client in mode "e2ee" drops plain bodies (the server cannot inject text).

import { b64decode, b64encode, lp, randomBytes, u32be, utf8 } from './encoding.js';
import { aesGcmDecrypt, aesGcmEncrypt, hkdf } from './primitives.js';

const LABEL = 'tc-e2ee/v1/chat';
const decoder = new TextDecoder('utf-8', { fatal: true });

async function chatKey(raw, cid, sender, keyId) {
  return hkdf(raw, cid, lp(LABEL, sender, u32be(keyId)), 32);
}

export async function sealChat({ raw, keyId, cid, sender, text }) {
  const iv = randomBytes(12);
  const key = await chatKey(raw, cid, sender, keyId);
  const ct = await aesGcmEncrypt(key, iv, utf8(text), lp(LABEL, cid, sender, u32be(keyId)));
  return { kind: 'e2ee', key_id: keyId, iv: b64encode(iv), ct: b64encode(ct) };
}

// The text, or null when it cannot be opened (unknown key, bad tag, not UTF-8).
export async function openChat({ body, cid, sender, keys }) {
  if (!body || body.kind !== 'e2ee' || !Number.isInteger(body.key_id)) return null;
  const found = keys.find((k) => k.sender === sender && k.keyId === body.key_id);
  if (!found) return null;
  try {
    const key = await chatKey(found.raw, cid, sender, body.key_id);
    const iv = b64decode(body.iv, 12);
    const pt = await aesGcmDecrypt(key, iv, b64decode(body.ct), lp(LABEL, cid, sender, u32be(body.key_id)));
    return decoder.decode(pt);
  } catch {
    return null;
  }
}
