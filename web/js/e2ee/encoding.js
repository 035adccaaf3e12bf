// Byte encodings of the E2EE protocol v1 (docs/e2ee.md "Encodings"): base64url without padding
// ("B64"), UTF-8, u32 big-endian, and lp(a, b, ...) — each part prefixed with its u16 big-endian
// length, so fields of an HMAC input, HKDF info or AEAD associated data cannot run into each other.
// Plain functions on Uint8Array; usable in the page and in the frame Worker.

const encoder = new TextEncoder();

export function utf8(text) { return encoder.encode(String(text)); }

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export function u32be(value) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0, false);
  return out;
}

function bytesOf(part) {
  if (part instanceof Uint8Array) return part;
  if (part instanceof ArrayBuffer) return new Uint8Array(part);
  return utf8(part);
}

export function lp(...parts) {
  const chunks = [];
  for (const part of parts) {
    const bytes = bytesOf(part);
    if (bytes.length > 0xffff) throw new RangeError('lp part too long');
    chunks.push(new Uint8Array([bytes.length >> 8, bytes.length & 0xff]), bytes);
  }
  return concat(...chunks);
}

export function b64encode(bytes) {
  const data = bytesOf(bytes);
  let bin = '';
  for (let i = 0; i < data.length; i += 1) bin += String.fromCharCode(data[i]);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// Throws on anything that is not base64url (or has the wrong length when `length` is given).
export function b64decode(text, length = null) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new TypeError('not base64url');
  }
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
  const bin = atob(padded);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  if (length !== null && out.length !== length) throw new TypeError(`expected ${length} bytes`);
  return out;
}

export function equalBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function randomBytes(n) { return crypto.getRandomValues(new Uint8Array(n)); }

// A random nonzero u32 not in `avoid` (a Set of numbers).
export function randomKeyId(avoid = new Set()) {
  for (;;) {
    const id = new DataView(randomBytes(4).buffer).getUint32(0, false);
    if (id !== 0 && !avoid.has(id)) return id;
  }
}
