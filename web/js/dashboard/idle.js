// Staff idle timeout (DESIGN §4: 30 min). Warn 60 s before; on timeout clear the page so nothing
// of the last consultation stays visible, then go to /login. Activity (pointer, key) restarts
// the timer and, at most once a minute, touches the server session (GET /api/me).

import { t } from '../i18n.js';

const WARN_BEFORE_S = 60;
const TOUCH_EVERY_MS = 60000;

export class IdleGuard {
  constructor(idleTimeoutS, { onTimeout, touch }) {
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
    const warnAt = Math.max(0, this.idleMs - WARN_BEFORE_S * 1000);
    this.deadline = Date.now() + this.idleMs;
    this.warnTimer = window.setTimeout(() => this.warn(), warnAt);
    this.endTimer = window.setTimeout(() => this.onTimeout(), this.idleMs);
  }

  warn() {
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
