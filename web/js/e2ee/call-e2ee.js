// End-to-end encryption of one call session (docs/e2ee.md): the policy and mode the server
// announces, the frame Worker (media-transforms.js) of each peer connection, the key manager of
// each media session, and the host's recording escrow. The call session forwards to it; the call
// view renders `status`.
//
// events: 'change' (status), 'final' ({state}) — the session must end in that state:
//   'e2ee-unsupported' (required, this browser cannot encrypt), 'e2ee-downgraded' (this client's
//   policy is required but the call runs hop by hop), 'e2ee-refused' (the doctor's key could not
//   be verified).

import { FrameCrypto, e2eeSupported, peerConfig, transformApi } from './media-transforms.js';
import { KeyManager } from './key-manager.js';
import { hostSecrets } from './link-secret.js';
import { RecordingEscrow } from './recording-escrow.js';

export class CallE2ee extends EventTarget {
  // secret/linkPolicy: from the patient link's fragment (null for the host or an old link).
  constructor({ consultationId, secret = null, linkPolicy = null, send }) {
    super();
    this.cid = consultationId;
    this.secret = secret;
    this.linkPolicy = linkPolicy;
    this.send = send; // (type, fields) => bool
    this.supported = e2eeSupported();
    this.api = this.supported ? transformApi() : null;
    this.policy = linkPolicy || 'off';
    this.mode = 'hop';
    this.frames = null;
    this.keys = null;
    this.escrow = null;
    this.role = '';
    this.selfPid = '';
    this.hostPid = 'host';
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  helloFields() { return { e2ee: this.supported }; }

  get required() { return this.policy === 'required' || this.linkPolicy === 'required'; }

  get enabled() { return this.supported && this.policy !== 'off'; }

  // -> a final state, or null.
  onWelcome(welcome) {
    const e = welcome.e2ee && typeof welcome.e2ee === 'object' ? welcome.e2ee : {};
    this.policy = ['required', 'preferred', 'off'].includes(e.policy) ? e.policy : 'off';
    this.mode = e.mode === 'e2ee' ? 'e2ee' : 'hop';
    this.role = welcome.role === 'doctor' ? 'host' : welcome.role;
    this.selfPid = welcome.participant_id;
    this.hostPid = welcome.host_participant_id || e.host_participant_id || (this.role === 'host' ? this.selfPid : 'host');
    if (this.role === 'host' && !this.escrow) {
      this.escrow = new RecordingEscrow({ cid: this.cid, send: (fields) => this.send('recording-key', fields) });
    }
    this.emit('change', this.status());
    if (this.required && !this.supported) return 'e2ee-unsupported';
    // The link says required: a server saying "off", or hop once in the call, is a downgrade.
    if (this.linkPolicy === 'required' && (this.policy === 'off' || (this.mode !== 'e2ee' && welcome.state === 'admitted'))) {
      return 'e2ee-downgraded';
    }
    return null;
  }

  // For each new peer connection.
  peerConfig(base) { return peerConfig(base, this.enabled); }

  newFrames() {
    this.stopKeys();
    if (this.frames) { this.frames.close(); this.frames = null; }
    if (!this.enabled) return null;
    this.frames = new FrameCrypto(this.mode);
    return this.frames;
  }

  // The participant is in the call (media join): start the key exchange of this media session.
  startKeys() {
    if (this.linkPolicy === 'required' && (this.mode !== 'e2ee' || !this.frames)) { this.emit('final', { state: 'e2ee-downgraded' }); return; }
    if (!this.enabled || !this.frames) return;
    this.stopKeys();
    const keys = new KeyManager({
      cid: this.cid, selfPid: this.selfPid, role: this.role, hostPid: this.hostPid, secret: this.secret,
      hostSecrets: () => hostSecrets(this.cid), frames: this.frames,
      send: (to, body) => this.send('e2ee', { to, body }),
    });
    this.keys = keys;
    keys.addEventListener('change', () => this.emit('change', this.status()));
    keys.addEventListener('refused', () => this.emit('final', { state: 'e2ee-refused' }));
    keys.addEventListener('key', (e) => { if (this.escrow) this.escrow.onKey(e.detail); });
    keys.start();
  }

  stopKeys() {
    if (this.keys) { this.keys.close(); this.keys = null; }
  }

  // Messages the E2EE side needs (every message passes here; returns nothing).
  onMessage(msg) {
    switch (msg.type) {
      case 'e2ee':
        if (this.keys && msg.body) this.keys.onMessage(msg.from, msg.body);
        break;
      case 'e2ee-mode':
        this.mode = msg.mode === 'e2ee' ? 'e2ee' : 'hop';
        if (this.frames && !(this.keys && this.keys.refused)) this.frames.setMode(this.mode);
        if (this.mode !== 'e2ee' && (this.linkPolicy === 'required' || this.policy === 'required')) {
          this.emit('final', { state: 'e2ee-downgraded' });
        }
        this.emit('change', this.status());
        break;
      case 'participant-joined':
        if (this.keys) this.keys.onJoined(msg.participant_id);
        break;
      case 'participant-left':
        if (this.keys) this.keys.onLeft(msg.participant_id);
        break;
      case 'recording-state':
        if (this.escrow) {
          this.escrow.onState(msg, () => (this.keys ? this.keys.mediaKeys() : []))
            .then(() => this.emit('change', this.status()));
        }
        break;
      default: break;
    }
  }

  async frameStats() { return this.frames ? this.frames.stats() : null; }

  status() {
    const keys = this.keys ? this.keys.status() : null;
    return {
      supported: this.supported,
      api: this.api,
      policy: this.policy,
      mode: this.mode,
      active: this.enabled && this.mode === 'e2ee' && !!keys && !keys.refused,
      keys,
      recordingKey: this.escrow && this.escrow.fingerprint ? {
        fingerprint: this.escrow.fingerprint,
        matchesServer: !this.escrow.serverFingerprint || this.escrow.serverFingerprint === this.escrow.fingerprint,
        sent: this.escrow.sentCount,
      } : null,
    };
  }

  close() {
    this.stopKeys();
    if (this.frames) { this.frames.close(); this.frames = null; }
  }
}
