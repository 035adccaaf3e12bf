// A Firefox patient for tests/test_e2ee_firefox.py: Debian's firefox-esr driven by Puppeteer over
// WebDriver BiDi (no geckodriver). Opens the link, passes the device check, waits to be admitted,
// then for the E2EE call (verified doctor key) and for video frames decoded and audio frames
// decrypted; prints one JSON line per step on stdout; closes when stdin says "quit" (or ends).
//
//   node patient.mjs <url> <display name>

import puppeteer from 'puppeteer-core';
import readline from 'node:readline';

const [url, name] = process.argv.slice(2);
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const log = [];

const INBOUND = `async () => {
  const pc = window.teleconsult && window.teleconsult.pc;
  const out = {video: 0, audioPackets: 0, width: 0};
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') { out.video += s.framesDecoded || 0; out.width = Math.max(out.width, s.frameWidth || 0); }
    if (s.kind === 'audio') out.audioPackets += s.packetsReceived || 0;
  });
  return out;
}`;

const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: process.env.TELECONSULT_TEST_FIREFOX || '/usr/bin/firefox-esr',
  headless: true,
  extraPrefsFirefox: {
    'media.navigator.streams.fake': true,
    'media.navigator.permission.disabled': true,
    'media.peerconnection.ice.obfuscate_host_addresses': false,
    'media.autoplay.default': 0,
  },
});
const quit = async (code) => { try { await browser.close(); } catch { /* gone */ } process.exit(code); };
try {
  const page = await browser.newPage();
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e}`));
  const wait = (fn, what, timeout = 30000, ...args) => page.waitForFunction(fn, { timeout, polling: 100 }, ...args)
    .catch((err) => { throw new Error(`${what}: ${err.message}`); });
  const t0 = Date.now();
  await page.goto(url);
  await wait("document.body.dataset.state === 'device-check'", 'device check');
  say({ step: 'device-check', version: await browser.version(), api: await page.evaluate("(async () => (await import('/static/js/e2ee/media-transforms.js')).transformApi())()") });
  await page.type('#display-name', name);
  await page.click('#join-submit');
  await wait("window.teleconsult.state === 'waiting'", 'waiting room');
  say({ step: 'waiting' });
  await wait("window.teleconsult.state === 'in-call'", 'in the call', 60000);
  await wait("(() => { const s = window.teleconsult.e2ee; return s && s.active && s.keys.peers.some((p) => p.state === 'verified'); })()", 'E2EE with the verified doctor');
  const start = await page.evaluate(`(${INBOUND})()`);
  await wait(`(async () => { const s = await (${INBOUND})(); return s.video >= ${start.video + 20} && s.audioPackets >= ${start.audioPackets + 50}; })()`, 'frames decoded', 30000);
  const inbound = await page.evaluate(`(${INBOUND})()`);
  const frames = await page.evaluate('window.teleconsult.e2eeFrameStats()');
  const e2ee = await page.evaluate('window.teleconsult.e2ee');
  const indicator = await page.evaluate("(() => { const el = document.querySelector('#e2ee-indicator'); return !!el && !el.hidden; })()");
  const code = await page.evaluate("document.querySelector('#e2ee-code-value').textContent");
  say({ step: 'decrypting', start, inbound, frames, e2ee, indicator, code, elapsedMs: Date.now() - t0 });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === 'stats') {
      say({ step: 'stats', inbound: await page.evaluate(`(${INBOUND})()`), frames: await page.evaluate('window.teleconsult.e2eeFrameStats()') });
    }
    if (line.trim() === 'quit') break;
  }
  await quit(0);
} catch (err) {
  let state = null;
  try {
    const page = (await browser.pages()).pop();
    state = {
      inbound: await page.evaluate(`(${INBOUND})()`),
      frames: await page.evaluate('window.teleconsult.e2eeFrameStats()'),
      e2ee: await page.evaluate('window.teleconsult.e2ee'),
      pc: await page.evaluate("(async () => { const pc = window.teleconsult.pc; if (!pc) return null; const out = {connection: pc.connectionState, ice: pc.iceConnectionState, gathering: pc.iceGatheringState, pairs: []}; (await pc.getStats()).forEach((s) => { if (s.type === 'candidate-pair') out.pairs.push(s.state + ' ' + s.nominated); }); return out; })()"),
      senders: await page.evaluate("window.teleconsult.pc ? window.teleconsult.pc.getSenders().map((x) => x.track ? x.track.kind + ':' + x.track.readyState : 'none') : null"),
    };
  } catch { /* the page is gone */ }
  say({ step: 'error', message: String(err && err.message), state, log: log.slice(-40) });
  await quit(1);
}
