// The admin page's integrations panel (docs/integrations.md): booking and patient-record systems.
// Create an integration with only the scopes it needs (its API key is shown once, here), revoke
// it, register its webhook (the signing secret is shown once, on the first registration) and
// rotate that secret. Every write goes through the page's `act` (re-authentication, errors).

import { api } from '../http.js';
import { t } from '../i18n.js';
import { announce } from '../live.js';
import { h, applyI18n } from '../dom.js';
import { copyShown, showOnce } from './shown-once.js';

export const SCOPES = ['consultations:create', 'consultations:read', 'invites:create'];
export const EVENTS = ['consultation.created', 'consultation.started', 'consultation.ended',
  'recording.available', 'recording.deleted'];
const $ = (id) => document.getElementById(id);
const ERRORS = {
  invalid_name: 'admin.int.error.name', invalid_scopes: 'admin.int.error.scopes', invalid_scope: 'admin.int.error.scopes',
  invalid_events: 'admin.int.error.events', invalid_event: 'admin.int.error.events',
  invalid_webhook_url: 'admin.int.error.url', integration_not_found: 'admin.int.error.gone',
};

function checked(container, name) {
  return [...container.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
}

function checkboxes(name, values, selected, labelPrefix) {
  return values.map((v) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name, value: v, checked: selected.includes(v) }),
    h('span', { i18n: `${labelPrefix}${v}` })));
}

export class IntegrationsPanel {
  constructor({ act, locale, errorText, onChange }) {
    this.act = act;
    this.onChange = onChange; // after a write: the page reloads its audit log
    this.locale = locale;
    this.errorText = (err) => (err && ERRORS[err.code] ? t(ERRORS[err.code]) : errorText(err));
    this.items = [];
    $('integration-scopes').append(...checkboxes('integration-scope', SCOPES, [], 'admin.int.scope.'));
    applyI18n($('integration-scopes'));
    $('integration-form').addEventListener('submit', (e) => this.create(e));
    $('integration-secret-copy').addEventListener('click', () => copyShown('integration-secret'));
  }

  async changed() { await Promise.all([this.refresh(), this.onChange()]); }

  async refresh() {
    const items = await this.act(() => api('GET', '/api/admin/integrations'));
    if (!items) return;
    this.items = items;
    this.render();
  }

  // An act whose API error is shown in `errorEl`, in the panel's own words.
  write(fn, errorEl) { return this.act(fn, errorEl, this.errorText); }

  async create(e) {
    e.preventDefault();
    const errorEl = $('integration-error');
    const name = $('integration-name').value.trim();
    const scopes = checked($('integration-scopes'), 'integration-scope');
    const problem = !name ? 'admin.int.error.name' : scopes.length === 0 ? 'admin.int.error.scopes' : null;
    if (problem) {
      errorEl.textContent = t(problem);
      errorEl.hidden = false;
      (name ? $('integration-scopes').querySelector('input') : $('integration-name')).focus();
      return;
    }
    const body = { name, scopes };
    const days = $('integration-expiry').value;
    if (days) body.expires_in_days = Number(days);
    $('integration-create').disabled = true;
    try {
      const result = await this.write(() => api('POST', '/api/admin/integrations', body), errorEl);
      if (!result) return;
      $('integration-form').reset();
      this.showSecret(result.api_key, 'admin.int.keyShown', result.integration);
      await this.changed();
    } finally {
      $('integration-create').disabled = false;
    }
  }

  showSecret(value, hintKey, integration) {
    showOnce('integration-secret', value, hintKey, { name: integration.name }, 'admin.int.copy');
  }

  async post(item, path, body, errorEl) {
    return this.write(() => api('POST', `/api/admin/integrations/${encodeURIComponent(item.id)}/${path}`, body || {}), errorEl);
  }

  async revoke(item, errorEl) {
    if (!window.confirm(t('admin.int.revokeConfirm', { name: item.name }))) return;
    if (!await this.post(item, 'revoke', {}, errorEl)) return;
    announce(t('admin.int.revoked', { name: item.name }));
    await this.changed();
  }

  async saveWebhook(item, form, errorEl) {
    const body = { url: form.querySelector('input[type="url"]').value.trim(), events: checked(form, `events-${item.id}`) };
    if (body.events.length === 0) { errorEl.textContent = t('admin.int.error.events'); errorEl.hidden = false; return; }
    const result = await this.post(item, 'webhook', body, errorEl);
    if (!result) return;
    if (result.secret) this.showSecret(result.secret, 'admin.int.secretShown', result.integration);
    else announce(t('admin.int.webhookSaved', { name: item.name }));
    await this.changed();
  }

  async rotate(item, errorEl) {
    const result = await this.post(item, 'rotate-secret', {}, errorEl);
    if (!result) return;
    this.showSecret(result.secret, 'admin.int.secretRotated', result.integration);
    await this.changed();
  }

  render() {
    $('integration-empty').hidden = this.items.length > 0;
    $('integration-list').replaceChildren(...this.items.map((item) => this.row(item)));
  }

  row(item) {
    const errorEl = h('p', { class: 'error-text', hidden: true, role: 'alert' });
    const vars = { name: item.name };
    const active = item.status === 'active';
    const actions = h('div', { class: 'row staff-actions' });
    const hook = item.webhook;
    const form = h('form', { class: 'webhook-form', hidden: true, novalidate: true },
      h('div', { class: 'field' },
        h('label', { for: `hook-url-${item.id}`, i18n: 'admin.int.webhookUrl' }),
        h('input', { id: `hook-url-${item.id}`, type: 'url', maxlength: '2000', value: hook ? hook.url : '', placeholder: 'https://' })),
      h('fieldset', { class: 'checks' }, h('legend', { i18n: 'admin.int.events' }),
        ...checkboxes(`events-${item.id}`, EVENTS, hook ? hook.events : [], 'admin.int.event.')),
      h('button', { type: 'submit', i18n: 'admin.int.webhookSave' }));
    form.addEventListener('submit', (e) => { e.preventDefault(); this.saveWebhook(item, form, errorEl); });
    const button = (key, labelKey, onClick, cls = 'secondary') => {
      const b = h('button', { type: 'button', class: cls, i18n: key, 'i18n-aria-label': labelKey, 'i18n-vars': vars });
      b.addEventListener('click', onClick);
      actions.append(b);
      return b;
    };
    if (active) {
      const toggle = button('admin.int.webhook', 'admin.int.webhookName', () => {
        form.hidden = !form.hidden;
        toggle.setAttribute('aria-expanded', String(!form.hidden));
        if (!form.hidden) form.querySelector('input').focus();
      });
      toggle.setAttribute('aria-expanded', 'false');
      if (hook) button('admin.int.rotate', 'admin.int.rotateName', () => this.rotate(item, errorEl));
      button('admin.int.revoke', 'admin.int.revokeName', () => this.revoke(item, errorEl), 'danger');
    }
    const expiry = item.expires_at
      ? t('admin.int.expires', { date: new Date(item.expires_at * 1000).toLocaleDateString(this.locale(), { dateStyle: 'medium' }) })
      : t('admin.int.noExpiry');
    const li = h('li', { 'data-integration-id': item.id, 'data-status': item.status },
      h('div', { class: 'staff-who' },
        h('span', { class: 'staff-name' }, item.name),
        h('code', { class: 'muted' }, item.id)),
      h('div', { class: 'row staff-tags' },
        h('span', { class: `state-pill state-${active ? 'active' : 'disabled'}`, i18n: `admin.int.status.${item.status}` }),
        ...item.scopes.map((s) => h('span', { class: 'state-pill', i18n: `admin.int.scope.${s}` }))),
      h('p', { class: 'muted integration-meta' }, expiry,
        hook ? ` · ${t('admin.int.webhookTo', { url: hook.url })}` : ''),
      errorEl, actions, active ? form : null);
    applyI18n(li);
    return li;
  }
}
