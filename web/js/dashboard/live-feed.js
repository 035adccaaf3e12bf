// The live dashboard: one WebSocket per dashboard tab (GET /api/dashboard/ws, the staff session
// cookie authenticates it). Each `consultation-status` message says who waits and who is in the
// call of one consultation; `status` events carry it. Reconnects with a bounded backoff; a 4401
// close (the staff session ended) fires `ended` and stops.

const SESSION_ENDED = 4401;

export class DashboardFeed extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.stopped = false;
    this.retryMs = 500;
    this.connected = false;
  }

  start() {
    if (this.stopped || this.ws) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/api/dashboard/ws`);
    this.ws = ws;
    ws.addEventListener('open', () => { this.connected = true; this.retryMs = 500; });
    ws.addEventListener('message', (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      if (msg && msg.type === 'consultation-status' && typeof msg.consultation_id === 'string') {
        this.dispatchEvent(new CustomEvent('status', { detail: msg }));
      }
    });
    ws.addEventListener('close', (event) => {
      this.ws = null;
      this.connected = false;
      if (this.stopped) return;
      if (event.code === SESSION_ENDED) { this.stopped = true; this.dispatchEvent(new Event('ended')); return; }
      const wait = this.retryMs;
      this.retryMs = Math.min(this.retryMs * 2, 15000);
      window.setTimeout(() => this.start(), wait);
    });
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }
}

// A system notification, only once the doctor allowed it (asked on a click, never on load).
export function notifyArrival(title, body) {
  if (!('Notification' in window) || Notification.permission !== 'granted' || !document.hidden) return;
  try { new Notification(title, { body, tag: 'teleconsult-waiting' }); } catch { /* optional */ }
}

export async function askNotifications() {
  if (!('Notification' in window)) return 'unsupported';
  if (Notification.permission !== 'default') return Notification.permission;
  try { return await Notification.requestPermission(); } catch { return 'denied'; }
}
