// Chat in the call (docs/api.md "Chat"): a toggle in the controls, a panel with the messages
// (role=log) and a one-line form. End-to-end encrypted whenever the call is (e2ee/chat-crypto.js);
// the panel says which. Nothing is kept: the messages live in this page only.

import { applyI18n, h } from '../dom.js';
import { t } from '../i18n.js';
import { announce } from '../live.js';
import { openChat, sealChat } from '../e2ee/chat-crypto.js';

export const MAX_CHAT_CHARS = 1000;
const KEY_WAIT_MS = 3000;
const POLL_MS = 100;

const pause = (ms) => new Promise((resolve) => { window.setTimeout(resolve, ms); });

export class ChatPanel {
  constructor(session, root) {
    this.session = session;
    this.root = root;
    this.unread = 0;
    this.log = [];
    this.button = root.querySelector('#btn-chat');
    this.panel = h('section', { id: 'chat-panel', class: 'chat-panel card', hidden: true, 'aria-labelledby': 'chat-title' },
      h('h2', { id: 'chat-title', i18n: 'chat.title' }),
      h('p', { id: 'chat-protection', class: 'hint' }),
      h('ul', { id: 'chat-log', class: 'chat-log', role: 'log', 'aria-live': 'polite' }),
      h('form', { id: 'chat-form', class: 'chat-form', novalidate: true },
        h('label', { for: 'chat-input', class: 'visually-hidden', i18n: 'chat.label' }),
        h('input', { id: 'chat-input', autocomplete: 'off', maxlength: String(MAX_CHAT_CHARS), 'i18n-placeholder': 'chat.placeholder' }),
        h('button', { id: 'chat-send', type: 'submit', i18n: 'chat.send' })),
      h('p', { id: 'chat-error', class: 'error-text', hidden: true, role: 'alert' }));
    applyI18n(this.panel);
    root.querySelector('#tiles').after(this.panel);
    this.onMessage = (e) => { if (e.detail && e.detail.type === 'chat') this.receive(e.detail); };
    session.addEventListener('message', this.onMessage);
    this.onE2ee = () => this.renderProtection();
    session.addEventListener('e2ee', this.onE2ee);
    this.button.addEventListener('click', () => this.toggle());
    this.panel.querySelector('#chat-form').addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    this.renderProtection();
  }

  get encrypted() { return this.session.e2ee && this.session.e2ee.mode === 'e2ee'; }

  renderProtection() {
    const el = this.panel.querySelector('#chat-protection');
    el.dataset.i18n = this.encrypted ? 'chat.e2ee' : 'chat.hop';
    el.textContent = t(el.dataset.i18n);
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.button.setAttribute('aria-expanded', String(open));
    if (open) {
      this.unread = 0;
      this.renderBadge();
      this.panel.querySelector('#chat-input').focus();
    }
  }

  renderBadge() {
    const badge = this.button.querySelector('.chat-unread');
    badge.hidden = this.unread === 0;
    badge.textContent = String(this.unread);
  }

  append(who, text, mine) {
    const item = h('li', { class: mine ? 'mine' : 'theirs' },
      h('span', { class: 'chat-who', text: who }), h('span', { class: 'chat-text', text }));
    this.panel.querySelector('#chat-log').append(item);
    item.scrollIntoView({ block: 'nearest' });
  }

  async submit() {
    const input = this.panel.querySelector('#chat-input');
    const text = input.value.trim().slice(0, MAX_CHAT_CHARS);
    const error = this.panel.querySelector('#chat-error');
    error.hidden = true;
    if (!text) return;
    const body = await this.seal(text);
    if (!body || !this.session.send('chat', { body })) {
      error.textContent = t('chat.notSent');
      error.hidden = false;
      return;
    }
    input.value = '';
    this.append(t('chat.you'), text, true);
  }

  // The body to send: sealed under our current media key in mode e2ee (waiting briefly for the
  // first key), plain text in mode hop; null when no key came in time.
  async seal(text) {
    if (!this.encrypted) return { kind: 'plain', text };
    const until = Date.now() + KEY_WAIT_MS;
    for (;;) {
      const keys = this.session.e2ee.keys;
      const current = keys && keys.current;
      if (current) {
        return sealChat({ raw: current.raw, keyId: current.keyId, cid: this.session.consultationId, sender: this.session.selfId, text });
      }
      if (Date.now() > until) return null;
      await pause(POLL_MS);
    }
  }

  async receive(msg) {
    const from = typeof msg.from === 'string' ? msg.from : '';
    const body = msg.body || {};
    let text = null;
    if (body.kind === 'plain') {
      text = this.encrypted ? null : (typeof body.text === 'string' ? body.text.slice(0, MAX_CHAT_CHARS) : null);
    } else if (body.kind === 'e2ee') {
      // The sender's key may reach us a moment after its first message: wait for it briefly.
      const until = Date.now() + KEY_WAIT_MS;
      for (;;) {
        const keys = this.session.e2ee.keys ? this.session.e2ee.keys.mediaKeys() : [];
        text = await openChat({ body, cid: this.session.consultationId, sender: from, keys });
        if (text !== null || Date.now() > until) break;
        await pause(POLL_MS);
      }
    }
    if (text === null) { this.dropped = (this.dropped || 0) + 1; return; }
    const who = this.session.nameOf(from) || t('chat.someone');
    this.append(who, text, false);
    if (this.panel.hidden) { this.unread += 1; this.renderBadge(); }
    announce(t('chat.received', { name: who, text }));
  }

  destroy() {
    this.session.removeEventListener('message', this.onMessage);
    this.session.removeEventListener('e2ee', this.onE2ee);
    this.panel.remove();
  }
}
