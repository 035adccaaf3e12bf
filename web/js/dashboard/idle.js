// Staff idle timeout (DESIGN §4: 30 min). Warn 60 s before (a quarter of the timeout when that is
// shorter, so a short timeout still warns first); on timeout clear the page so nothing of the
// last consultation stays visible, then go to /login. Activity (pointer, key) restarts
// the timer and, at most once a minute (a quarter of a short timeout), touches the server session
// (GET /api/me). A live call with
// someone else in it is activity too (a consultation may run 30 min without a click): `busy()`
// true at warning time touches the session and re-arms instead of warning.

import { t } from '../i18n.js';

const WARN_BEFORE_S = 60;
const TOUCH_EVERY_MS = 60000;
// The server writes a session's last_seen at most every min(15 s, idle/4) (server/auth/sessions.py).
const SERVER_TOUCH_S = 15;

export function warnLeadMs(idleMs) { return Math.min(WARN_BEFORE_S * 1000, idleMs / 4); }

export class IdleGuard {
  constructor(idleTimeoutS, { onTimeout, touch, busy = () => false }) {
    this.busy = busy;
    this.idleMs = Math.max(10, idleTimeoutS) * 1000;
    // Time out on the server's clock: it counts from the last request it saw (at most one
    // throttled write behind), so "Stay signed in" never meets an already-expired session.
    this.slackMs = Math.min(SERVER_TOUCH_S * 1000, this.idleMs / 4);
    this.touchEveryMs = Math.min(TOUCH_EVERY_MS, this.idleMs / 4);
    this.onTimeout = onTimeout;
    this.touch = touch;
    this.lastTouch = Date.now();
    this.warnTimer = 0;
    this.endTimer = 0;
    this.countdown = 0;
    this.dialog = document.getElementById('idle-dialog');
    document.getElementById('idle-stay').addEventListener('click', () => this.activity(true));
    for (const type of ['pointerdown', 'keydown']) {
      document.addEventListener(type, () => { if (this.dialog.hidden) this.activity(false); }, { passive: true });
    }
    this.arm();
  }

  arm() {
    window.clearTimeout(this.warnTimer);
    window.clearTimeout(this.endTimer);
    window.clearInterval(this.countdown);
    this.deadline = this.lastTouch + this.idleMs - this.slackMs;
    const lead = warnLeadMs(this.deadline - this.lastTouch);
    this.warnTimer = window.setTimeout(() => this.warn(), Math.max(0, this.deadline - lead - Date.now()));
    this.endTimer = window.setTimeout(() => this.onTimeout(), Math.max(0, this.deadline - Date.now()));
  }

  warn() {
    if (this.busy()) { this.activity(true); return; }
    const text = document.getElementById('idle-text');
    const update = () => {
      const seconds = Math.max(0, Math.round((this.deadline - Date.now()) / 1000));
      text.textContent = t('dash.idle.text', { seconds });
    };
    update();
    this.countdown = window.setInterval(update, 1000);
    this.dialog.hidden = false;
    document.getElementById('idle-stay').focus();
  }

  activity(force) {
    this.dialog.hidden = true;
    if (force || Date.now() - this.lastTouch > this.touchEveryMs) {
      this.lastTouch = Date.now();
      this.touch();
    }
    this.arm();
  }

  stop() {
    window.clearTimeout(this.warnTimer);
    window.clearTimeout(this.endTimer);
    window.clearInterval(this.countdown);
  }
}
