// A participant's connection to a consultation: the WebSocket, the RTCPeerConnection, the
// participants and their tracks, and reconnection (when: reconnect.js). UI-free: pages listen
// to its events. Participants carry `reconnecting` while the server says their media is away.
//
// events: 'state' (detail: state), 'participants', 'track' ({participantId, label, track, stream}),
//         'lobby' (message), 'notice' ({key, vars}), 'message' (any other server message),
//         'e2ee' (status of end-to-end encryption, see e2ee/call-e2ee.js).
// states: 'connecting' | 'waiting' | 'in-call' | 'reconnecting' | 'ended' | 'denied' | 'removed'
//         | 'left' | 'replaced' | 'e2ee-unsupported' | 'e2ee-downgraded' | 'e2ee-refused'

import { Peer } from './peer.js';
import { Reconnector } from './reconnect.js';
import { CLOSE, Signalling } from './signalling.js';
import { CallE2ee } from '../e2ee/call-e2ee.js';

const FINAL = new Set(['ended', 'denied', 'removed', 'moved', 'left', 'replaced', 'e2ee-unsupported', 'e2ee-downgraded', 'e2ee-refused']);
const LOBBY_TYPES = new Set(['lobby']);
const MAX_BACKOFF_MS = 8000;
const WARM_PEER_MAX_AGE_MS = 120000;
const RESUME_WAIT_MS = 5000; // for `media-resumed` after a hello with resume
const OPEN_TIMEOUT_MS = 8000; // for the welcome on a new socket

export class CallSession extends EventTarget {
  // getRoomToken: async () => token (staff) or null (participant cookie).
  // e2ee: {secret, linkPolicy} from a patient link's fragment (docs/e2ee.md), or {} for the host.
  constructor({ consultationId, getRoomToken = null, localMedia, e2ee = {} }) {
    super();
    this.consultationId = consultationId;
    this.e2ee = new CallE2ee({ consultationId, ...e2ee, send: (type, fields) => this.send(type, fields) });
    this.e2ee.addEventListener('change', (e) => this.emit('e2ee', e.detail));
    this.e2ee.addEventListener('final', (e) => this.finish(e.detail.state));
    this.getRoomToken = getRoomToken;
    this.local = localMedia; // {stream, audioTrack, videoTrack}
    this.state = 'connecting';
    this.selfId = null;
    this.role = null;
    this.participants = new Map();
    this.midInfo = new Map(); // mid -> {participant_id, track_id, kind}
    this.peer = null;
    this.peerWarm = false;
    this.signalling = null;
    this.micMuted = false;
    this.cameraOff = false;
    this.screenTrack = null;
    this.screenStream = null;
    this.backoff = 0;
    this.retryTimer = 0;
    this.wantMedia = true;
    this.joined = false; // media started once: a new socket asks to resume
    this.resuming = false;
    this.resumeTimer = 0;
    this.net = new Reconnector(this);
  }

  get pc() { return this.peer ? this.peer.pc : null; }
  get finished() { return FINAL.has(this.state); }
  get isHost() { return this.role === 'host' || this.role === 'doctor'; }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  async connect() {
    if (FINAL.has(this.state)) return;
    window.clearTimeout(this.retryTimer);
    const signalling = new Signalling(this.consultationId);
    this.signalling = signalling;
    signalling.addEventListener('message', (e) => this.onMessage(e.detail));
    signalling.addEventListener('close', (e) => this.onClose(signalling, e.detail));
    let welcome;
    try {
      const token = this.getRoomToken ? await this.getRoomToken() : null;
      welcome = await signalling.open(token, { ...this.e2ee.helloFields(), ...(this.resuming ? { resume: true } : {}) }, OPEN_TIMEOUT_MS);
    } catch (err) {
      if (this.signalling === signalling) this.handleFailure(err.closeCode, err.code);
      return;
    }
    this.backoff = 0;
    this.net.watchSocket();
    this.selfId = welcome.participant_id;
    this.role = welcome.role;
    this.iceServers = welcome.ice_servers || [];
    this.iceTransportPolicy = welcome.ice_transport_policy === 'relay' ? 'relay' : 'all';
    const refusal = this.e2ee.onWelcome(welcome);
    if (refusal) { this.finish(refusal); return; }
    this.participants.clear();
    for (const p of welcome.participants || []) this.upsertParticipant(p);
    this.emit('participants');
    const wasReconnecting = this.state === 'reconnecting';
    if (welcome.state === 'admitted' && this.resuming) {
      window.clearTimeout(this.resumeTimer); // the server says `media-resumed` (onMessage)
      this.resumeTimer = window.setTimeout(() => this.onResumed(false), RESUME_WAIT_MS);
    } else if (welcome.state === 'admitted') {
      await this.startMedia();
      if (wasReconnecting) this.emit('notice', { key: 'live.reconnected' });
    } else {
      this.resuming = false;
      this.setState('waiting');
      this.warmUp();
    }
  }

  // keepFrames: a new peer connection of the same media session (the frame Worker, its keys and
  // IV counter carry on); else a new media session.
  newPeer(keepFrames = false) {
    const frames = keepFrames ? this.e2ee.frames : this.e2ee.newFrames();
    const peer = new Peer(this.iceServers, (type, fields) => this.send(type, fields),
      { frames, iceTransportPolicy: this.iceTransportPolicy, configure: (config) => this.e2ee.peerConfig(config) });
    peer.addEventListener('track', (e) => this.onTrack(e.detail));
    peer.addEventListener('state', (e) => this.onPeerState(peer, e.detail));
    return peer;
  }

  // While waiting: build the offer and gather ICE candidates now, so that being admitted
  // costs one message instead of a gathering round (100-300 ms, more with STUN/TURN).
  warmUp() {
    if (this.peer) this.peer.close();
    this.midInfo.clear();
    this.peer = this.newPeer();
    this.peerWarm = true;
    const { stream, audioTrack } = this.local;
    const videoTrack = this.cameraOff ? null : this.local.videoTrack;
    this.peer.prepare(audioTrack || null, videoTrack || null, stream || null)
      .catch((err) => console.warn('prepare failed', err && err.name));
  }

  upsertParticipant(p) {
    if (!p || !p.participant_id) return;
    const existing = this.participants.get(p.participant_id) || { muted: {}, role: '', display_name: '' };
    const next = { ...existing, ...p, muted: { ...existing.muted } };
    if (Array.isArray(p.tracks)) {
      for (const tr of p.tracks) if (tr && tr.kind) next.muted[tr.kind] = !!tr.muted;
    }
    if (p.muted && typeof p.muted === 'object') Object.assign(next.muted, p.muted);
    this.participants.set(p.participant_id, next);
  }

  async startMedia() {
    // A peer warmed up while waiting is used if it is recent; otherwise start afresh.
    const warm = this.peerWarm && this.peer && Date.now() - this.peer.preparedAt < WARM_PEER_MAX_AGE_MS;
    this.peerWarm = false;
    if (!warm) {
      if (this.peer) this.peer.close();
      this.midInfo.clear();
      this.peer = this.newPeer();
    }
    const peer = this.peer;
    this.joined = true;
    this.setState('in-call');
    this.e2ee.startKeys();
    const { stream, audioTrack } = this.local;
    const videoTrack = this.cameraOff ? null : this.local.videoTrack;
    await peer.start(audioTrack || null, videoTrack || null, stream || null);
    // Tell the others the current state (after a reconnect the server starts from unmuted).
    if (this.micMuted) this.send('mute', { kind: 'audio', muted: true });
    if (this.cameraOff) this.send('mute', { kind: 'video', muted: true });
    if (this.screenTrack) this.send('renegotiate', { publish: ['audio', 'video', 'screen'] });
  }

  // The server answered a hello with resume (reconnect.js decides what follows).
  onResumed(resumed) {
    window.clearTimeout(this.resumeTimer);
    if (!this.resuming) return;
    this.resuming = false;
    this.net.resumed(resumed);
  }

  backInCall() {
    if (this.state !== 'reconnecting') return;
    this.setState('in-call');
    this.emit('notice', { key: 'live.reconnected' });
  }

  restartMedia() { return this.net.restartMedia(); }

  send(type, fields) { return this.signalling ? this.signalling.send(type, fields) : false; }

  onMessage(msg) {
    this.net.heard();
    this.e2ee.onMessage(msg);
    switch (msg.type) {
      case 'pong': break;
      case 'media-resumed': this.onResumed(msg.resumed === true); break;
      case 'participant-reconnecting': case 'participant-reconnected': {
        const p = this.participants.get(msg.participant_id);
        const away = msg.type === 'participant-reconnecting';
        if (p && !!p.reconnecting !== away) {
          p.reconnecting = away;
          this.emit('participants');
          this.emit('notice', { key: away ? 'live.participantReconnecting' : 'live.participantBack', vars: { name: this.nameOf(msg.participant_id) } });
        }
        break;
      }
      case 'offer':
        for (const tr of msg.tracks || []) this.midInfo.set(String(tr.mid), tr);
        if (this.peer) {
          this.peer.handleOffer(msg.sdp, this.screenMidFrom(msg.receive), this.screenTrack)
            .then(() => this.rebindTracks())
            .catch((err) => console.warn('offer failed', err && err.name));
        }
        break;
      case 'answer':
        if (this.peer) this.peer.handleAnswer(msg.sdp).catch((err) => console.warn('answer failed', err && err.name));
        break;
      case 'admitted':
        if (this.state === 'waiting') this.startMedia();
        break;
      case 'denied': this.finish('denied'); break;
      case 'removed': this.finish('removed'); break;
      case 'moved': this.finish('moved'); break; // the doctor gave this patient a link for another device
      case 'ended': this.finish('ended'); break;
      case 'participant-joined': {
        const known = this.participants.has(msg.participant_id);
        this.upsertParticipant(msg);
        this.emit('participants');
        if (!known && msg.participant_id !== this.selfId) {
          this.emit('notice', { key: 'live.joined', vars: { name: this.nameOf(msg.participant_id) } });
        }
        break;
      }
      case 'participant-left': {
        const name = this.nameOf(msg.participant_id);
        if (this.participants.delete(msg.participant_id)) {
          this.emit('participants');
          this.emit('notice', { key: 'live.left', vars: { name } });
        }
        break;
      }
      case 'track-published':
        if (msg.track) {
          this.upsertParticipant({ participant_id: msg.participant_id, tracks: [msg.track] });
          this.emit('participants');
          if (msg.track.kind === 'screen') this.emit('notice', { key: 'live.screenShared', vars: { name: this.nameOf(msg.participant_id) } });
        }
        break;
      case 'track-unpublished': {
        const p = this.participants.get(msg.participant_id);
        if (p && msg.kind === 'screen') { p.screenGone = true; }
        this.emit('track-unpublished', msg);
        break;
      }
      case 'mute-state': {
        const p = this.participants.get(msg.participant_id);
        if (p) {
          const before = !!p.muted[msg.kind];
          p.muted[msg.kind] = !!msg.muted;
          this.emit('participants');
          if (before !== !!msg.muted && msg.participant_id !== this.selfId && msg.kind !== 'screen') {
            const key = msg.kind === 'audio' ? (msg.muted ? 'live.muted' : 'live.unmuted') : (msg.muted ? 'live.cameraOff' : 'live.cameraOn');
            this.emit('notice', { key, vars: { name: this.nameOf(msg.participant_id) } });
          }
        }
        break;
      }
      case 'e2ee': case 'e2ee-mode': break;
      default:
        if (LOBBY_TYPES.has(msg.type)) this.emit('lobby', msg);
        else this.emit('message', msg);
    }
  }

  screenMidFrom(receive) {
    if (!receive) return null;
    for (const [mid, label] of Object.entries(receive)) if (label === 'screen') return mid;
    return null;
  }

  nameOf(pid) {
    const p = this.participants.get(pid);
    return (p && p.display_name) || '';
  }

  // Which participant and label a receiving transceiver carries (offer `tracks`, else stream id).
  describe(transceiver, streams) {
    const info = transceiver && transceiver.mid != null ? this.midInfo.get(String(transceiver.mid)) : null;
    if (info) return { participantId: info.participant_id, label: info.kind };
    const sid = streams && streams[0] ? streams[0].id : '';
    if (sid.endsWith('-screen')) return { participantId: sid.slice(0, -7), label: 'screen' };
    return { participantId: sid, label: transceiver && transceiver.receiver.track.kind };
  }

  onTrack(event) {
    const { participantId, label } = this.describe(event.transceiver, event.streams);
    this.emit('track', { participantId, label, track: event.track, mid: event.transceiver.mid });
  }

  // After an offer the same mid may carry another participant: re-announce every live receiver.
  rebindTracks() {
    if (!this.peer) return;
    for (const tr of this.peer.pc.getTransceivers()) {
      if (!tr.mid || !tr.receiver.track) continue;
      if (tr.currentDirection !== 'recvonly' && tr.currentDirection !== 'sendrecv') continue;
      const info = this.midInfo.get(String(tr.mid));
      if (!info || info.participant_id === this.selfId) continue;
      this.emit('track', { participantId: info.participant_id, label: info.kind, track: tr.receiver.track, mid: tr.mid });
    }
  }

  onPeerState(peer, state) {
    if (peer !== this.peer) return;
    if (state === 'connected') this.backInCall();
    else if (this.joined) this.net.peerState(state);
    else if (state === 'failed') this.reconnectSocket();
  }

  onClose(signalling, { code }) {
    if (signalling !== this.signalling) return;
    this.handleFailure(code);
  }

  handleFailure(closeCode, errorCode) {
    if (FINAL.has(this.state)) return;
    if (closeCode === CLOSE.ENDED) { this.finish('ended'); return; }
    if (errorCode === 'e2ee_required') { this.finish('e2ee-unsupported'); return; }
    if (closeCode === CLOSE.REPLACED) { this.finish('replaced'); return; }
    if (closeCode === CLOSE.UNAUTHENTICATED || closeCode === CLOSE.FORBIDDEN || errorCode === 'forbidden') {
      this.finish('ended');
      return;
    }
    this.reconnectSocket();
  }

  // A new socket. Once in the call, the hello asks to resume and the peer connection is kept
  // until the server answers (media-resumed); before, everything starts afresh.
  reconnectSocket() {
    if (FINAL.has(this.state)) return;
    if (this.state !== 'reconnecting') {
      this.setState('reconnecting');
      this.emit('notice', { key: 'live.reconnecting' });
    }
    this.resuming = this.joined;
    window.clearTimeout(this.resumeTimer);
    this.net.pause(); // until the next welcome
    const signalling = this.signalling;
    this.signalling = null;
    if (signalling) signalling.close(CLOSE.RECONNECTING);
    if (!this.joined && this.peer) { this.peer.close(); this.peer = null; }
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(Math.max(this.backoff * 2, 500), MAX_BACKOFF_MS);
  }

  // -- controls ---------------------------------------------------------------------------

  setMicMuted(muted) {
    this.micMuted = muted;
    if (this.local.audioTrack) this.local.audioTrack.enabled = !muted;
    this.send('mute', { kind: 'audio', muted });
  }

  // Camera off: replaceTrack(null) and stop the device; camera on: a fresh track.
  async setCameraOff(off, freshTrack = null) {
    this.cameraOff = off;
    if (off) {
      if (this.peer) await this.peer.replaceVideo(null);
      if (this.local.videoTrack) this.local.videoTrack.stop();
    } else if (freshTrack) {
      this.replaceLocalTrack('video', freshTrack);
      if (this.peer) await this.peer.replaceVideo(freshTrack);
    }
    this.send('mute', { kind: 'video', muted: off });
  }

  replaceLocalTrack(kind, track) {
    const stream = this.local.stream || new MediaStream();
    const old = kind === 'video' ? this.local.videoTrack : this.local.audioTrack;
    if (old) { stream.removeTrack(old); if (old !== track) old.stop(); }
    stream.addTrack(track);
    this.local.stream = stream;
    if (kind === 'video') this.local.videoTrack = track;
    else { this.local.audioTrack = track; track.enabled = !this.micMuted; }
  }

  // Device switch mid-call with replaceTrack (no renegotiation).
  async switchDevice(kind, track) {
    this.replaceLocalTrack(kind, track);
    if (!this.peer) return;
    if (kind === 'video' && !this.cameraOff) await this.peer.replaceVideo(track);
    if (kind === 'audio') await this.peer.replaceAudio(track);
  }

  async startScreen(track, stream) {
    this.screenTrack = track;
    this.screenStream = stream;
    track.addEventListener('ended', () => { if (this.screenTrack === track) this.stopScreen(); });
    if (this.peer) await this.peer.setScreenTrack(track);
    this.send('renegotiate', { publish: ['audio', 'video', 'screen'] });
  }

  async stopScreen() {
    const track = this.screenTrack;
    this.screenTrack = null;
    this.screenStream = null;
    if (this.peer) await this.peer.setScreenTrack(null);
    if (track) track.stop();
    this.send('renegotiate', { publish: ['audio', 'video'] });
    this.emit('participants');
  }

  // Host lobby and room actions over the WebSocket.
  admit(pid) { this.send('admit', { participant_id: pid }); }
  deny(pid) { this.send('deny', { participant_id: pid }); }
  remove(pid) { this.send('remove', { participant_id: pid }); }
  endForAll() { this.send('end'); }

  leave() {
    this.send('leave');
    this.finish('left');
  }

  finish(state) {
    if (FINAL.has(this.state)) return;
    window.clearTimeout(this.retryTimer);
    window.clearTimeout(this.resumeTimer);
    this.net.close();
    const signalling = this.signalling;
    this.signalling = null;
    if (signalling) signalling.close();
    if (this.peer) { this.peer.close(); this.peer = null; }
    this.e2ee.close();
    if (this.screenTrack) { this.screenTrack.stop(); this.screenTrack = null; }
    this.setState(state);
  }
}
