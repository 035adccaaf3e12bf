// Key exchange and media keys of one participant in one media session (docs/e2ee.md): announce /
// vouch / key / key-ack over the `e2ee` relay, the trust rules (link secret, host vouching), the
// sender's media key and its rekeying, the receivers' keys handed to the frame Worker, and the
// safety code. UI-free; the call session owns it and the call view renders its status.
//
//   const km = new KeyManager({cid, selfPid, role, hostPid, secret, hostSecrets, frames, send});
//   await km.start();  km.onMessage(from, body);  km.onJoined(pid);  km.onLeft(pid);
// events: 'change' (status()), 'refused' ({reason}), 'key' ({sender, keyId, raw}: a media key
// this client installed or switched to — recording escrow listens).

import { b64decode, b64encode, equalBytes, randomBytes, randomKeyId } from './encoding.js';
import { generateEcdh } from './primitives.js';
import {
  announceAuth, authKeyOf, linkIdOf, openMediaKey, pairKey, safetyCode, sealMediaKey, verifyAnnounce,
  verifyVouch, vouchAuth,
} from './protocol.js';

export const SWITCH_AFTER_MS = 1000;
const MAX_BUFFERED = 16;
const ROLES = new Set(['host', 'patient', 'guest']);
const ACCEPTED = new Set(['verified', 'unverified']);

export class KeyManager extends EventTarget {
  constructor({ cid, selfPid, role, hostPid, secret = null, hostSecrets = () => new Map(), frames, send }) {
    super();
    this.cid = cid;
    this.selfPid = selfPid;
    this.role = role === 'host' || role === 'doctor' ? 'host' : role;
    this.isHost = this.role === 'host';
    this.hostPid = this.isHost ? selfPid : hostPid;
    this.secret = this.isHost ? null : secret;
    this.hostSecrets = hostSecrets; // host: () => Map B64(link_id) -> s (read when needed: links made mid-call)
    this.frames = frames;
    this.sendBody = send; // (to, body) => bool
    this.peers = new Map();
    this.queue = Promise.resolve();
    this.refused = null;
    this.code = '';
    this.usedKeyIds = new Set();
    this.current = null; // {keyId, raw, distributed}
    this.pending = null; // {keyId, raw, waiting: Set, timer}
    this.received = new Map(); // `${pid}:${keyId}` -> {sender, keyId, raw}
    this.rekeyTimer = 0;
    this.closed = false;
    this.counters = { bad_messages: 0, bad_keys: 0 };
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  serial(fn) {
    const run = this.queue.then(() => (this.closed ? undefined : fn()));
    this.queue = run.catch((err) => { this.counters.bad_messages += 1; console.warn('e2ee message ignored', err && err.name); });
    return this.queue;
  }

  // Runs first in the message queue: messages that arrive meanwhile wait for it.
  start() { return this.serial(() => this.begin()); }

  async begin() {
    this.pair = await generateEcdh();
    this.pubB64 = b64encode(this.pair.publicRaw);
    if (this.secret) {
      this.kAuth = await authKeyOf(this.secret, this.cid);
      this.linkIdB64 = b64encode(await linkIdOf(this.secret));
    }
    const raw = randomBytes(16);
    const keyId = randomKeyId(this.usedKeyIds);
    this.usedKeyIds.add(keyId);
    this.current = { keyId, raw, distributed: false };
    this.frames.setSendKey(keyId, raw);
    this.emit('key', { sender: this.selfPid, keyId, raw });
    await this.refreshCode();
    if (!this.isHost) await this.announce('*');
  }

  close() {
    this.closed = true;
    window.clearTimeout(this.rekeyTimer);
    if (this.pending) window.clearTimeout(this.pending.timer);
  }

  // -- outgoing ---------------------------------------------------------------------------

  send(to, body) { if (!this.refused || body.kind === 'key-ack') this.sendBody(to, body); }

  async announce(to, peer = null) {
    const body = { kind: 'announce', pub: this.pubB64, role: this.role };
    if (this.isHost) {
      if (peer && peer.secret) body.auth = b64encode(await announceAuth(await authKeyOf(peer.secret, this.cid), this.cid, this.selfPid, 'host', this.pair.publicRaw));
    } else if (this.kAuth) {
      body.link_id = this.linkIdB64;
      body.auth = b64encode(await announceAuth(this.kAuth, this.cid, this.selfPid, this.role, this.pair.publicRaw));
    }
    this.send(to, body);
  }

  async vouch(to, about) {
    if (!to.secret) return;
    const kAuth = await authKeyOf(to.secret, this.cid);
    const auth = await vouchAuth(kAuth, this.cid, about.pid, about.role, about.pub);
    this.send(to.pid, { kind: 'vouch', pid: about.pid, role: about.role, pub: b64encode(about.pub), auth: b64encode(auth) });
  }

  async sendKey(peer, key) {
    const { iv, ct } = await sealMediaKey(peer.kPair, this.cid, this.selfPid, peer.pid, key.keyId, key.raw);
    this.send(peer.pid, { kind: 'key', key_id: key.keyId, iv: b64encode(iv), ct: b64encode(ct) });
  }

  // -- incoming ---------------------------------------------------------------------------

  onMessage(from, body) {
    if (!from || typeof from !== 'string' || !body || typeof body !== 'object') return;
    this.serial(() => this.handle(from, body));
  }

  async handle(from, body) {
    if (this.refused && body.kind !== 'key-ack') return;
    if (body.kind === 'announce') await this.onAnnounce(from, body);
    else if (body.kind === 'vouch') await this.onVouch(from, body);
    else if (body.kind === 'key') await this.onKey(from, body);
    else if (body.kind === 'key-ack') this.onKeyAck(from, body);
  }

  peer(pid) {
    let p = this.peers.get(pid);
    if (!p) {
      p = { pid, role: '', pub: null, state: 'pending', kPair: null, secret: null, answered: new Set(), keys: [] };
      this.peers.set(pid, p);
    }
    return p;
  }

  async onAnnounce(from, body) {
    if (!ROLES.has(body.role) || from === this.selfPid) return;
    const pub = b64decode(body.pub, 65);
    const p = this.peer(from);
    const isNew = !p.answered.has(body.pub);
    if (!isNew && p.pub && equalBytes(p.pub, pub)) return; // a repeat of what we handled
    if (this.isHost) await this.hostAccepts(p, body, pub);
    else await this.guestAccepts(p, body, pub);
    if (isNew && p.state !== 'refused' && !this.refused) {
      p.answered.add(body.pub);
      await this.announce(from, p);
    }
  }

  async hostAccepts(p, body, pub) {
    let state = 'unverified';
    p.secret = null;
    if (body.role === 'host') state = 'refused';
    else if (typeof body.link_id === 'string' && this.hostSecrets().has(body.link_id)) {
      const s = this.hostSecrets().get(body.link_id);
      let ok = false;
      try { ok = await verifyAnnounce(await authKeyOf(s, this.cid), this.cid, p.pid, body.role, pub, b64decode(body.auth || '', 32)); } catch { ok = false; }
      state = ok ? 'verified' : 'refused';
      if (ok) p.secret = s;
    }
    await this.accept(p, state, pub, body.role);
    if (!ACCEPTED.has(p.state)) return;
    for (const other of this.peers.values()) {
      if (other === p || !ACCEPTED.has(other.state)) continue;
      await this.vouch(other, p);
      await this.vouch(p, other);
    }
  }

  async guestAccepts(p, body, pub) {
    const claimsHost = body.role === 'host' || p.pid === this.hostPid;
    if (claimsHost) {
      if (!this.secret) { await this.accept(p, 'unverified', pub, 'host'); return; }
      let ok = false;
      if (p.pid === this.hostPid && body.role === 'host') {
        try { ok = await verifyAnnounce(this.kAuth, this.cid, p.pid, 'host', pub, b64decode(body.auth || '', 32)); } catch { ok = false; }
      }
      if (!ok) { this.refuse('host_unverified'); return; }
      await this.accept(p, 'verified', pub, 'host');
      for (const v of this.buffered || []) await this.onVouch(this.hostPid, v);
      this.buffered = [];
      return;
    }
    if (!this.secret) { await this.accept(p, 'unverified', pub, body.role); return; }
    // Holding s: another participant's key counts only when the host vouches for it.
    if (p.state === 'pending') { p.announced = pub; p.role = body.role; }
  }

  async onVouch(from, body) {
    if (this.isHost || !this.secret || from !== this.hostPid) return;
    const host = this.peers.get(this.hostPid);
    if (!host || host.state !== 'verified') {
      this.buffered = [...(this.buffered || []), body].slice(-MAX_BUFFERED);
      return;
    }
    if (typeof body.pid !== 'string' || body.pid === this.selfPid || body.pid === this.hostPid || !ROLES.has(body.role)) return;
    const pub = b64decode(body.pub, 65);
    const ok = await verifyVouch(this.kAuth, this.cid, body.pid, body.role, pub, b64decode(body.auth || '', 32));
    if (!ok) { this.counters.bad_messages += 1; return; }
    const p = this.peer(body.pid);
    if (ACCEPTED.has(p.state) && p.pub && equalBytes(p.pub, pub)) return;
    await this.accept(p, 'verified', pub, body.role);
  }

  async accept(p, state, pub, role) {
    const changed = p.state !== state || !p.pub || !equalBytes(p.pub, pub);
    p.state = state;
    p.role = role;
    p.pub = pub;
    p.kPair = ACCEPTED.has(state) ? await pairKey(this.pair.privateKey, pub, this.cid, this.selfPid, p.pid) : null;
    if (!ACCEPTED.has(state)) { this.frames.forget(p.pid); p.keys = []; }
    if (!changed) return;
    const keys = p.keys;
    p.keys = [];
    for (const body of keys) await this.onKey(p.pid, body);
    await this.refreshCode();
    if (ACCEPTED.has(state)) this.scheduleRekey();
  }

  async onKey(from, body) {
    const p = this.peers.get(from) || this.peer(from);
    if (p.state === 'refused') return;
    if (!ACCEPTED.has(p.state)) { p.keys = [...p.keys, body].slice(-MAX_BUFFERED); return; }
    const keyId = body.key_id;
    if (!Number.isInteger(keyId) || keyId <= 0 || keyId > 0xffffffff) return;
    let raw;
    try {
      raw = await openMediaKey(p.kPair, this.cid, from, this.selfPid, keyId, b64decode(body.iv, 12), b64decode(body.ct));
    } catch { this.counters.bad_keys += 1; return; }
    if (raw.length !== 16) { this.counters.bad_keys += 1; return; }
    this.frames.addReceiveKey(from, keyId, raw);
    this.received.set(`${from}:${keyId}`, { sender: from, keyId, raw });
    this.send(from, { kind: 'key-ack', key_id: keyId });
    this.emit('key', { sender: from, keyId, raw });
  }

  onKeyAck(from, body) {
    const pending = this.pending;
    if (!pending || body.key_id !== pending.keyId) return;
    pending.waiting.delete(from);
    if (pending.waiting.size === 0) this.switchKey();
  }

  // -- membership -------------------------------------------------------------------------

  // Someone entered the call. A patient/guest re-announces to the host (the host never
  // broadcasts: its announce is authenticated per recipient).
  onJoined(pid) {
    if (this.isHost || pid !== this.hostPid) return;
    this.serial(() => this.announce(pid));
  }

  onLeft(pid) {
    this.serial(async () => {
      const p = this.peers.get(pid);
      if (!p) return;
      this.peers.delete(pid);
      this.frames.forget(pid);
      for (const k of [...this.received.keys()]) if (k.startsWith(`${pid}:`)) this.received.delete(k);
      if (this.pending) this.pending.waiting.delete(pid);
      await this.refreshCode();
      if (ACCEPTED.has(p.state)) this.scheduleRekey();
    });
  }

  refuse(reason) {
    if (this.refused) return;
    this.refused = reason;
    this.frames.setMode('blocked');
    this.emit('refused', { reason });
    this.emit('change', this.status());
  }

  // -- rekeying ---------------------------------------------------------------------------

  accepted() { return [...this.peers.values()].filter((p) => ACCEPTED.has(p.state)); }

  // Bursts (a join vouches several participants at once) make one rekey.
  scheduleRekey() {
    window.clearTimeout(this.rekeyTimer);
    this.rekeyTimer = window.setTimeout(() => this.serial(() => this.rekey()), 0);
  }

  async rekey() {
    if (this.refused) return;
    const recipients = this.accepted();
    if (!this.current.distributed && !this.pending) {
      // Nobody holds our key yet: hand it out as it is (the joiner's first key).
      for (const p of recipients) await this.sendKey(p, this.current);
      if (recipients.length) this.current.distributed = true;
      return;
    }
    if (this.pending) window.clearTimeout(this.pending.timer);
    const keyId = randomKeyId(this.usedKeyIds);
    this.usedKeyIds.add(keyId);
    const pending = { keyId, raw: randomBytes(16), waiting: new Set(recipients.map((p) => p.pid)), timer: 0 };
    this.pending = pending;
    for (const p of recipients) await this.sendKey(p, pending);
    this.emit('key', { sender: this.selfPid, keyId, raw: pending.raw });
    if (pending.waiting.size === 0) this.switchKey();
    else pending.timer = window.setTimeout(() => this.serial(() => { if (this.pending === pending) this.switchKey(); }), SWITCH_AFTER_MS);
  }

  switchKey() {
    const pending = this.pending;
    if (!pending) return;
    window.clearTimeout(pending.timer);
    this.pending = null;
    this.current = { keyId: pending.keyId, raw: pending.raw, distributed: true };
    this.frames.setSendKey(pending.keyId, pending.raw);
    this.emit('change', this.status());
  }

  // -- status -----------------------------------------------------------------------------

  async refreshCode() {
    const entries = [{ pid: this.selfPid, pub: this.pair.publicRaw }];
    for (const p of this.accepted()) entries.push({ pid: p.pid, pub: p.pub });
    this.code = await safetyCode(this.cid, entries);
    this.emit('change', this.status());
  }

  // Every media key in use: own (current and pending) and received ones.
  mediaKeys() {
    const out = [];
    if (this.current) out.push({ sender: this.selfPid, keyId: this.current.keyId, raw: this.current.raw });
    if (this.pending) out.push({ sender: this.selfPid, keyId: this.pending.keyId, raw: this.pending.raw });
    return out.concat([...this.received.values()]);
  }

  status() {
    const peers = [...this.peers.values()].map((p) => ({ pid: p.pid, role: p.role, state: p.state }));
    return {
      refused: this.refused,
      safetyCode: this.code,
      hasSecret: !!this.secret,
      sendKeyId: this.current ? this.current.keyId : 0,
      peers,
      unverified: peers.filter((p) => p.state === 'unverified').map((p) => p.pid),
      rejected: peers.filter((p) => p.state === 'refused').map((p) => p.pid),
      pending: peers.filter((p) => p.state === 'pending').map((p) => p.pid),
      counters: { ...this.counters },
    };
  }
}
