// Staff idle timeout (DESIGN §4: 30 min). Warn 60 s before (a quarter of the timeout when that is
// shorter, so a short timeout still warns first); on timeout clear the page so nothing of the
// last consultation stays visible, then go to /login. Activity (pointer, key) restarts
// the timer and, at most once a minute, touches the server session (GET /api/me). A live call with
// someone else in it is activity too (a consultation may run 30 min without a click): `busy()`
// true at warning time touches the session and re-arms instead of warning.

import { t } from '../i18n.js';

const WARN_BEFORE_S = 60;
const TOUCH_EVERY_MS = 60000;

export function warnLeadMs(idleMs) { return Math.min(WARN_BEFORE_S * 1000, idleMs / 4); }

export class IdleGuard {
  constructor(idleTimeoutS, { onTimeout, touch, busy = () => false }) {
    this.busy = busy;
    this.idleMs = Math.max(10, idleTimeoutS) * 1000;
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
    const warnAt = this.idleMs - warnLeadMs(this.idleMs);
    this.deadline = Date.now() + this.idleMs;
    this.warnTimer = window.setTimeout(() => this.warn(), warnAt);
    this.endTimer = window.setTimeout(() => this.onTimeout(), this.idleMs);
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
    this.arm();
    if (force || Date.now() - this.lastTouch > TOUCH_EVERY_MS) {
      this.lastTouch = Date.now();
      this.touch();
    }
  }

  stop() {
    window.clearTimeout(this.warnTimer);
    window.clearTimeout(this.endTimer);
    window.clearInterval(this.countdown);
  }
}
