// The patient link's secret (docs/e2ee.md "The link secret"). The host's browser makes s (16
// random bytes) for each new invite and appends `.<B64(s)>.<p>` to the server's link
// (`…/join#<token>`), p = policy letter: `r` required, `p` preferred. The host keeps its secrets
// per consultation in localStorage `tc-e2ee:<cid>` = {B64(link_id): B64(s)}. The join page posts
// only the token; the fragment never reaches the server (D5).

import { b64decode, b64encode, randomBytes } from './encoding.js';
import { linkIdOf } from './protocol.js';

const STORAGE_PREFIX = 'tc-e2ee:';
const LETTERS = { r: 'required', p: 'preferred' };

// '#<token>[.<B64(s)>.<p>]' (leading '#' optional) -> {token, secret: Uint8Array|null, policy}
// A malformed secret part is dropped (the link then counts as one without a secret); a bad
// letter is ignored. Never throws.
export function parseFragment(fragment) {
  const text = decodeURIComponent(String(fragment || '').replace(/^#/, ''));
  const [token, secretPart, letter] = text.split('.');
  let secret = null;
  if (secretPart) {
    try { secret = b64decode(secretPart, 16); } catch { secret = null; }
  }
  return { token: token || '', secret, policy: (secret && LETTERS[letter]) || null };
}

function load(cid) {
  try {
    const parsed = JSON.parse(localStorage.getItem(STORAGE_PREFIX + cid) || '{}');
    return parsed && typeof parsed === 'object' ? parsed : {};
  } catch { return {}; }
}

// A new secret for an invite of consultation `cid`: stored, and the link to give the patient.
export async function secureLink(cid, serverLink, policy) {
  const s = randomBytes(16);
  const linkId = b64encode(await linkIdOf(s));
  const all = load(cid);
  all[linkId] = b64encode(s);
  try { localStorage.setItem(STORAGE_PREFIX + cid, JSON.stringify(all)); } catch { /* private mode: link unverified */ }
  const letter = policy === 'required' ? 'r' : 'p';
  return `${serverLink}.${b64encode(s)}.${letter}`;
}

// The host's secrets of `cid`: Map B64(link_id) -> Uint8Array s.
export function hostSecrets(cid) {
  const out = new Map();
  for (const [linkId, s] of Object.entries(load(cid))) {
    try { out.set(linkId, b64decode(s, 16)); } catch { /* skip a damaged entry */ }
  }
  return out;
}

export function forgetSecrets(cid) {
  try { localStorage.removeItem(STORAGE_PREFIX + cid); } catch { /* ignore */ }
}
