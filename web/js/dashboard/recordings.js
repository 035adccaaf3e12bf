// The dashboard's "Recordings" section (docs/api.md "Recordings"): the doctor's consultations'
// recordings, each file downloadable, each recording deletable after a confirm step. Download and
// delete need a recent re-authentication: on 403 reauth_required a small form asks for the
// password or an authenticator code (POST /api/reauth), then the action is retried.
//
// A download is fetched (so a refusal can be told apart from a file) and handed to the browser
// as a blob: link with a download name; the decrypted file lives only in this page's memory.

import { ApiError, api } from '../http.js';
import { lang, t } from '../i18n.js';
import { announce } from '../live.js';
import { h, applyI18n } from '../dom.js';

function $(id) { return document.getElementById(id); }

function locale() { return lang() === 'fr' ? 'fr-FR' : 'en-GB'; }

function fmtDate(epochS) {
  return epochS ? new Date(epochS * 1000).toLocaleString(locale(), { dateStyle: 'medium', timeStyle: 'short' }) : '—';
}

function fmtDuration(ms) {
  const s = Math.max(0, Math.round((ms || 0) / 1000));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

function errorText(err) {
  if (err instanceof ApiError) {
    if (err.code === 'recording_running') return t('recordings.error.running');
    if (err.code === 'recording_not_found') return t('recordings.error.notFound');
    if (err.code === 'recording_file_missing') return t('recordings.error.missing');
    if (err.code === 'invalid_credentials') return t('recordings.reauth.wrong');
    if (err.code === 'rate_limited') return t('recordings.reauth.limited');
  }
  return (err && err.message) || t('common.error');
}

// "Doctor", "Patient: Alice Martin": who a file is (names come from the API, for this page only).
function whoOf(file) {
  const role = t(`recordings.who.${['doctor', 'patient', 'guest'].includes(file.role) ? file.role : 'participant'}`);
  return file.display_name ? t('recordings.whoNamed', { role, name: file.display_name }) : role;
}

export class RecordingsPanel {
  // labelFor(consultationId) -> a consultation label or null; onUnauthenticated() -> go to /login.
  constructor({ labelFor, onUnauthenticated }) {
    this.labelFor = labelFor;
    this.onUnauthenticated = onUnauthenticated;
    this.items = [];
    this.pending = null; // the action to retry after a re-authentication
    this.confirming = null; // id of the recording whose deletion is being confirmed
    $('reauth-form').addEventListener('submit', (e) => { e.preventDefault(); this.reauth(); });
    $('reauth-cancel').addEventListener('click', () => this.closeReauth());
    $('reauth-form').addEventListener('keydown', (e) => { if (e.key === 'Escape') this.closeReauth(); });
  }

  async refresh() {
    try {
      this.items = await api('GET', '/api/recordings') || [];
      this.setError(null);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { this.onUnauthenticated(); return; }
      this.items = [];
      this.setError(t('recordings.loadFailed'));
    }
    this.render();
  }

  setError(text) {
    const p = $('rec-error');
    p.textContent = text || '';
    p.hidden = !text;
  }

  render() {
    const ul = $('rec-list');
    ul.replaceChildren();
    $('rec-empty').hidden = this.items.length > 0;
    for (const rec of this.items) ul.append(this.item(rec));
    applyI18n(ul);
  }

  item(rec) {
    const label = this.labelFor(rec.consultation_id) || rec.consultation_id;
    const stopped = rec.state === 'stopped';
    // The recording's true length (its own timeline), never the sum of its files.
    const totalMs = rec.duration_ms || 0;
    const files = h('ul', { class: 'rec-files' });
    (rec.files || []).forEach((f) => {
      const who = whoOf(f);
      const vars = { who, label };
      files.append(h('li', { 'data-file': f.name, 'data-role': f.role || 'participant' },
        h('span', { class: 'rec-who', text: who }),
        h('span', { class: 'muted', text: fmtDuration(f.duration_ms) }),
        f.offset_ms > 999 ? h('span', { class: 'muted', i18n: 'recordings.from', 'i18n-vars': { time: fmtDuration(f.offset_ms) } }) : null,
        h('button', { type: 'button', class: 'secondary rec-download', disabled: !stopped, i18n: 'recordings.download',
          'i18n-aria-label': 'recordings.downloadLabel', 'i18n-vars': vars, onclick: () => this.download(rec, f.name) })));
    });
    const actions = h('div', { class: 'row rec-actions' });
    if (this.confirming === rec.id) {
      actions.append(
        h('span', { class: 'rec-confirm-text', id: `rec-confirm-${rec.id}`, i18n: 'recordings.confirm' }),
        h('button', { type: 'button', class: 'danger rec-confirm', i18n: 'recordings.confirmYes',
          'aria-describedby': `rec-confirm-${rec.id}`, onclick: () => this.remove(rec) }),
        h('button', { type: 'button', class: 'secondary rec-cancel', i18n: 'common.cancel',
          onclick: () => { this.confirming = null; this.render(); this.focusIn(rec.id, '.rec-delete'); } }));
    } else {
      actions.append(h('button', { type: 'button', class: 'secondary rec-delete', disabled: !stopped, i18n: 'recordings.delete',
        'i18n-aria-label': 'recordings.deleteLabel', 'i18n-vars': { label },
        onclick: () => { this.confirming = rec.id; this.render(); this.focusIn(rec.id, '.rec-confirm'); } }));
    }
    return h('li', { class: 'rec-item', 'data-recording-id': rec.id },
      h('div', { class: 'rec-head' },
        h('span', { class: 'c-label', text: label }),
        h('span', { class: 'muted', text: fmtDate(rec.created_at) }),
        totalMs ? h('span', { class: 'muted', text: fmtDuration(totalMs) }) : null,
        h('span', { class: 'state-pill', i18n: rec.interrupted ? 'recordings.state.interrupted' : `recordings.state.${rec.state}` })),
      (rec.files || []).length ? files : h('p', { class: 'muted', i18n: 'recordings.noFiles' }),
      actions);
  }

  focusIn(rid, selector) {
    const li = [...$('rec-list').children].find((el) => el.dataset.recordingId === rid);
    const el = li && li.querySelector(selector);
    if (el) el.focus();
  }

  // Run an action; on reauth_required ask for a factor, then retry it.
  async run(action) {
    this.setError(null);
    try {
      await action();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'reauth_required') { this.openReauth(action); return; }
      if (err instanceof ApiError && err.status === 401) { this.onUnauthenticated(); return; }
      this.setError(errorText(err));
    }
  }

  download(rec, name) {
    return this.run(async () => {
      const path = `/api/recordings/${encodeURIComponent(rec.id)}/download?file=${encodeURIComponent(name)}`;
      const response = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
      if (!response.ok) {
        let data = null;
        try { data = await response.json(); } catch { data = null; }
        const e = (data && data.error) || data || {};
        throw new ApiError(response.status, e.code, e.message);
      }
      const url = URL.createObjectURL(await response.blob());
      const a = h('a', { href: url, download: `${rec.id}-${name}`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60000);
      announce(t('recordings.downloaded'));
    });
  }

  remove(rec) {
    return this.run(async () => {
      await api('DELETE', `/api/recordings/${encodeURIComponent(rec.id)}`);
      this.confirming = null;
      announce(t('recordings.deleted'));
      await this.refresh();
      $('rec-title').focus();
    });
  }

  openReauth(action) {
    this.pending = action;
    $('reauth-error').hidden = true;
    $('reauth-secret').value = '';
    $('reauth-form').hidden = false;
    announce(t('recordings.reauth.title'));
    $('reauth-secret').focus();
  }

  closeReauth() {
    this.pending = null;
    $('reauth-form').hidden = true;
    $('reauth-secret').value = '';
    $('rec-title').focus();
  }

  async reauth() {
    const value = $('reauth-secret').value.trim();
    if (!value) { this.reauthError(t('recordings.reauth.empty')); return; }
    // A password has at least 12 characters: six digits are an authenticator code.
    const body = /^\d{6}$/.test(value) ? { code: value } : { password: $('reauth-secret').value };
    const submit = $('reauth-submit');
    submit.disabled = true;
    try {
      await api('POST', '/api/reauth', body);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && err.code !== 'invalid_credentials') { this.onUnauthenticated(); return; }
      this.reauthError(errorText(err));
      $('reauth-secret').focus();
      return;
    } finally {
      submit.disabled = false;
    }
    const action = this.pending;
    this.pending = null;
    $('reauth-form').hidden = true;
    $('reauth-secret').value = '';
    if (action) await this.run(action);
  }

  reauthError(text) {
    const p = $('reauth-error');
    p.textContent = text;
    p.hidden = false;
  }
}
