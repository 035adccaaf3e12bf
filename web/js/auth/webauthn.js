// Passkeys in the browser: the server's WebAuthn JSON options in, the credential's JSON out.
// Uses PublicKeyCredential.parse…OptionsFromJSON / toJSON() where the browser has them
// (Chrome 129+, Firefox 119+, Safari 18) and converts base64url by hand elsewhere.
import { api } from '../http.js';

function b64urlToBuf(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function bufToB64url(buf) {
  const bytes = new Uint8Array(buf);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function passkeysSupported() {
  return !!(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
}

function creationOptions(json) {
  if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  return {
    ...json,
    challenge: b64urlToBuf(json.challenge),
    user: { ...json.user, id: b64urlToBuf(json.user.id) },
    excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBuf(c.id) })),
  };
}

function requestOptions(json) {
  if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  return {
    ...json,
    challenge: b64urlToBuf(json.challenge),
    allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBuf(c.id) })),
  };
}

function credentialJSON(cred) {
  if (typeof cred.toJSON === 'function') return cred.toJSON();
  const r = cred.response;
  const response = { clientDataJSON: bufToB64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = bufToB64url(r.attestationObject);
    response.transports = typeof r.getTransports === 'function' ? r.getTransports() : [];
  } else {
    response.authenticatorData = bufToB64url(r.authenticatorData);
    response.signature = bufToB64url(r.signature);
    if (r.userHandle) response.userHandle = bufToB64url(r.userHandle);
  }
  return { id: cred.id, rawId: bufToB64url(cred.rawId), type: cred.type, response,
    clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    authenticatorAttachment: cred.authenticatorAttachment || undefined };
}

// A browser-side refusal (cancelled, timed out, no matching passkey) becomes an error the
// pages show with one message.
class PasskeyCancelled extends Error {
  constructor() { super('passkey_cancelled'); this.code = 'passkey_cancelled'; }
}

// POST optionsPath (body), create a passkey, return {ceremony_id, credential} for the finish call.
export async function createPasskey(optionsPath, body = {}) {
  const { ceremony_id: ceremonyId, options } = await api('POST', optionsPath, body);
  let cred;
  try {
    cred = await navigator.credentials.create({ publicKey: creationOptions(options) });
  } catch { throw new PasskeyCancelled(); }
  if (!cred) throw new PasskeyCancelled();
  return { ceremony_id: ceremonyId, credential: credentialJSON(cred) };
}

// POST optionsPath, ask the authenticator for an assertion, return {ceremony_id, credential}.
export async function getPasskey(optionsPath, body = {}) {
  const { ceremony_id: ceremonyId, options } = await api('POST', optionsPath, body);
  let cred;
  try {
    cred = await navigator.credentials.get({ publicKey: requestOptions(options) });
  } catch { throw new PasskeyCancelled(); }
  if (!cred) throw new PasskeyCancelled();
  return { ceremony_id: ceremonyId, credential: credentialJSON(cred) };
}
