// Recording under E2EE, the host's side (docs/e2ee.md "Recording"): while the recording state is
// `waiting` or `recording` and the server gave the clinic's recording public key, every media key
// in use (own and received) and every new one is wrapped to that key and sent as a
// `recording-key` message. The fingerprint shown next to Record is computed here from the key
// itself (first 16 hex of SHA-256 of the raw point), not taken from the server's word.

import { b64decode } from './encoding.js';
import { escrowMediaKey, fingerprintOf } from './protocol.js';

export class RecordingEscrow {
  constructor({ cid, send }) {
    this.cid = cid;
    this.send = send; // (fields) => bool
    this.clinicPub = null;
    this.fingerprint = '';
    this.active = false;
    this.sent = new Set();
    this.queue = Promise.resolve();
    this.sentCount = 0;
  }

  serial(fn) { this.queue = this.queue.then(fn).catch((err) => console.warn('escrow failed', err && err.name)); return this.queue; }

  // A `recording-state` message; keys(): every media key in use [{sender, keyId, raw}].
  onState(msg, keys) {
    return this.serial(async () => {
      const rk = msg.recording_key;
      let pub = null;
      if (rk && typeof rk.pub === 'string') {
        try { pub = b64decode(rk.pub, 65); } catch { pub = null; }
      }
      if (pub) {
        this.clinicPub = pub;
        this.fingerprint = await fingerprintOf(pub);
        this.serverFingerprint = typeof rk.fingerprint === 'string' ? rk.fingerprint : '';
      } else if (!rk) {
        this.clinicPub = null;
        this.fingerprint = '';
      }
      const active = !!this.clinicPub && (msg.state === 'waiting' || msg.state === 'recording');
      if (!active) { this.active = false; this.sent.clear(); return; }
      this.active = true;
      for (const k of keys()) await this.wrap(k);
    });
  }

  onKey(k) { return this.serial(() => (this.active ? this.wrap(k) : undefined)); }

  async wrap({ sender, keyId, raw }) {
    const id = `${sender}:${keyId}`;
    if (this.sent.has(id)) return;
    this.sent.add(id);
    const body = await escrowMediaKey(this.clinicPub, this.cid, sender, keyId, raw);
    if (this.send(body)) this.sentCount += 1;
    else this.sent.delete(id);
  }
}
