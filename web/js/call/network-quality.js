// The network quality indicator of every participant, on every screen (issue #15): this
// browser's own figures (quality.js: loss, round trip, incoming bitrate from getStats) go to
// the server (`network-quality`), which relays each participant's to the others; each remote
// tile shows them as text beside a dot (readable at a glance, not by colour alone). A screen
// reader hears a change of level (good / unstable / poor), not every sample.

import { announce } from '../live.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { classify } from './quality.js';

export function qualityText({ quality, lossPct, rttMs, kbpsIn }) {
  if (quality === 'unknown' || lossPct == null) return t(`call.quality.${quality}`);
  return t('call.quality.detailRate', {
    quality: t(`call.quality.${quality}`),
    loss: lossPct.toFixed(1),
    rtt: rttMs == null ? '–' : Math.round(rttMs),
    kbps: kbpsIn == null ? '–' : Math.round(kbpsIn),
  });
}

export function wireNetworkQuality(session, view) {
  const levels = new Map(); // pid -> last level announced

  function badgeFor(pid) {
    const rec = view.tileMap.get(`${pid}:camera`);
    if (!rec) return null;
    let badge = rec.tile.querySelector('.tile-quality');
    if (!badge) {
      badge = h('span', { class: 'tile-quality quality', 'data-quality': 'unknown' },
        h('span', { class: 'quality-dot', 'aria-hidden': 'true' }), h('span', { class: 'tile-quality-text' }));
      rec.tile.querySelector('.tile-caption').append(badge);
    }
    return badge;
  }

  const onMessage = (e) => {
    const msg = e.detail;
    if (!msg || msg.type !== 'network-quality' || msg.participant_id === session.selfId) return;
    const badge = badgeFor(msg.participant_id);
    if (!badge) return;
    const lossPct = typeof msg.loss_pct === 'number' ? msg.loss_pct : null;
    const rttMs = typeof msg.rtt_ms === 'number' ? msg.rtt_ms : null;
    const kbpsIn = typeof msg.kbps_in === 'number' ? msg.kbps_in : null;
    const quality = classify(lossPct, rttMs);
    badge.dataset.quality = quality;
    badge.dataset.loss = String(lossPct);
    badge.dataset.rtt = String(rttMs);
    badge.dataset.kbps = String(kbpsIn);
    const name = session.nameOf(msg.participant_id);
    badge.querySelector('.tile-quality-text').textContent = qualityText({ quality, lossPct, rttMs, kbpsIn });
    badge.setAttribute('aria-label', t('call.quality.of', { name, detail: qualityText({ quality, lossPct, rttMs, kbpsIn }) }));
    const before = levels.get(msg.participant_id);
    levels.set(msg.participant_id, quality);
    if (before && before !== quality) announce(t('call.quality.changed', { name, quality: t(`call.quality.${quality}`) }));
  };
  session.addEventListener('message', onMessage);
  return {
    // this browser's own sample: shown by the view, and sent for the others' screens
    report(sample) {
      if (sample.lossPct == null) return;
      session.send('network-quality', {
        loss_pct: Math.min(100, Math.max(0, Math.round(sample.lossPct * 10) / 10)),
        rtt_ms: sample.rttMs == null ? null : Math.min(60000, Math.round(sample.rttMs)),
        kbps_in: sample.kbpsIn == null ? null : Math.min(1000000, Math.round(sample.kbpsIn)),
      });
    },
    destroy() { session.removeEventListener('message', onMessage); },
  };
}
