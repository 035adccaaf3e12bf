// The consultation WebSocket (docs/api.md): JSON text frames {"v":1,"type":...}.
// Authenticated by the participant cookie, or by a staff room token in the first message.

export const CLOSE = {
  UNAUTHENTICATED: 4401,
  FORBIDDEN: 4403,
  ENDED: 4410,
  REPLACED: 4409,
  RATE_LIMITED: 4429,
  POLICY: 1008,
  RECONNECTING: 4000, // ours, closing a socket we gave up on: not a goodbye (the call is held)
};

export class Signalling extends EventTarget {
  constructor(consultationId) {
    super();
    this.consultationId = consultationId;
    this.ws = null;
  }

  // Open, send hello (+ extra fields, e.g. {e2ee: true}), resolve with the welcome message
  // (reject on close before welcome, or when no welcome came within timeoutMs).
  open(roomToken, extra = {}, timeoutMs = 0) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/api/consultations/${encodeURIComponent(this.consultationId)}/ws`;
    const ws = new WebSocket(url);
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      // A socket to an address that went away may never open nor close on its own.
      const timer = timeoutMs ? window.setTimeout(() => { if (!welcomed) ws.close(CLOSE.RECONNECTING); }, timeoutMs) : 0;
      ws.addEventListener('open', () => {
        const hello = roomToken ? { ...extra, room_token: roomToken } : { ...extra };
        this.send('hello', hello);
      });
      ws.addEventListener('message', (event) => {
        let msg;
        try { msg = JSON.parse(event.data); } catch { return; }
        if (!msg || typeof msg.type !== 'string') return;
        if (!welcomed && msg.type === 'welcome') { welcomed = true; window.clearTimeout(timer); resolve(msg); return; }
        if (!welcomed && msg.type === 'error') { reject(Object.assign(new Error(msg.message || msg.code), { code: msg.code })); return; }
        this.dispatchEvent(new CustomEvent('message', { detail: msg }));
      });
      ws.addEventListener('close', (event) => {
        window.clearTimeout(timer);
        if (this.ws === ws) this.ws = null;
        if (!welcomed) reject(Object.assign(new Error('closed'), { closeCode: event.code }));
        this.dispatchEvent(new CustomEvent('close', { detail: { code: event.code, reason: event.reason, welcomed } }));
      });
    });
  }

  send(type, fields = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ v: 1, type, ...fields }));
    return true;
  }

  close(code = 1000) {
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(code);
  }
}
