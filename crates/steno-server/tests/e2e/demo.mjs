// Drives the steno web demo in headless Chromium with a fake microphone and
// reports what the page showed. Started by tests/browser.rs, which starts the
// servers, makes the speech file and does the asserting; this script only
// observes, takes screenshots and fails on timeouts.
//
// Environment (set by tests/browser.rs):
//   STENO_E2E_URL        http://HOST:PORT/ of a server with free slots
//   STENO_E2E_FULL_URL   http://HOST:PORT/ of a server whose only slot is held
//   STENO_E2E_WAV        the fake microphone: a 48 kHz mono 16-bit WAV (Chromium loops it)
//   STENO_E2E_ARTIFACTS  where screenshots and the page's console log go
//   STENO_E2E_CHROMIUM   the browser (default /usr/bin/chromium)
//
// Prints one line `E2E_RESULT {json}` on success.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v == null) throw new Error(`${name} is not set (this script is started by tests/browser.rs)`);
  return v;
};
const url = env('STENO_E2E_URL');
const fullUrl = env('STENO_E2E_FULL_URL');
const wav = env('STENO_E2E_WAV');
const artifacts = env('STENO_E2E_ARTIFACTS');
const executablePath = env('STENO_E2E_CHROMIUM', '/usr/bin/chromium');

const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

// A hard stop, in case the browser hangs where no Playwright timeout reaches.
const watchdog = setTimeout(() => {
  console.error('demo.mjs: gave up after 240 s');
  process.exit(3);
}, 240_000);

mkdirSync(artifacts, { recursive: true });
const consoleLines = [];
const started = Date.now();
const step = (what) => console.error(`demo.mjs: ${((Date.now() - started) / 1000).toFixed(1)} s ${what}`);

// Records every change of every transcript row, with the page's clock, so the
// test can tell that a partial was on screen before its final.
function recordRows() {
  window.__rows = [];
  const seen = new Map();
  const scan = () => {
    for (const li of document.querySelectorAll('#transcript .utterance')) {
      const key = li.dataset.utterance;
      const state = li.dataset.state;
      const text = li.querySelector('.text')?.textContent ?? '';
      const prev = seen.get(key);
      if (!prev || prev.state !== state || prev.text !== text) {
        seen.set(key, { state, text });
        window.__rows.push({ t: performance.now(), utterance: Number(key), state, text });
      }
    }
  };
  new MutationObserver(scan).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
}

// In the page: every utterance has its final and nothing new was heard for a
// while (the fake microphone's trailing silence).
function quietAfterFinals() {
  const open = document.querySelector('.utterance[data-state="partial"]')
    || document.querySelector('#speech[data-state="speech"]');
  const last = window.__rows.length ? window.__rows[window.__rows.length - 1].t : 0;
  return !open && performance.now() - last > 2500;
}

async function shot(page, name) {
  const path = join(artifacts, name);
  await page.screenshot({ path, fullPage: true, animations: 'disabled' });
  step(`screenshot ${path}`);
}

function watchConsole(page, label) {
  page.on('console', (m) => consoleLines.push(`[${label}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => {
    consoleLines.push(`[${label}] pageerror: ${e.message}`);
    console.error(`demo.mjs: page error on ${label}: ${e.message}`);
  });
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Playwright gives every launch a fresh, empty --user-data-dir of its own.
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`,
    '--autoplay-policy=no-user-gesture-required',
  ],
});

const result = {};
let current = null; // the page in front, for a screenshot when a step fails
try {
  const context = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light' });
  await context.grantPermissions(['microphone', 'clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });

  // 1. A live session: speak, see partials, see the final, stop.
  const page = await context.newPage();
  current = page;
  watchConsole(page, 'live');
  await page.addInitScript(recordRows);
  await page.goto(url);
  await page.waitForSelector('#toggle[data-state="idle"]:not([disabled])', { timeout: 15_000 });
  result.supported = await page.evaluate(() => document.querySelector('#notice').hidden);
  result.liveCapture = await page.textContent('#stat-capture');
  await shot(page, '01-desktop-idle.png');

  await page.click('#toggle');
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 15_000 });
  step('live');
  await page.waitForSelector('#speech[data-state="speech"]', { timeout: 20_000 });
  result.hearingSpeechText = await page.textContent('#speech-text');
  step('hearing speech');
  await page.waitForFunction(
    () => [...document.querySelectorAll('.utterance[data-state="partial"] .text')]
      .some((p) => p.textContent.trim().split(/\s+/).length >= 2),
    null,
    { timeout: 30_000 },
  );
  step('partial on screen');
  await shot(page, '02-desktop-partial.png');

  await page.waitForSelector('.utterance[data-state="final"]', { timeout: 60_000 });
  step('final on screen');
  // The speaker may pause inside the clip: wait until every utterance has
  // its final and nothing new has been heard for a while (the file's
  // trailing silence), then stop, before Chromium loops back to speech.
  await page.waitForFunction(quietAfterFinals, null, { timeout: 60_000, polling: 100 });
  step('quiet after the last final');
  // Stop in the fake file's trailing silence, before it loops back to speech.
  await page.click('#toggle');
  await page.waitForSelector('#toggle[data-state="idle"]', { timeout: 30_000 });
  step('stopped');
  result.connectionAfterStop = await page.textContent('#connection-text');
  result.noticeAfterStop = await page.evaluate(() => {
    const n = document.querySelector('#notice');
    return n.hidden ? null : n.textContent.trim();
  });
  result.rows = await page.evaluate(() => window.__rows);
  result.finals = await page.$$eval('.utterance[data-state="final"]', (lis) => lis.map((li) => ({
    utterance: Number(li.dataset.utterance),
    text: li.querySelector('.text').textContent,
    latency: li.querySelector('.lat').textContent,
  })));
  result.latencyHeadline = await page.textContent('#latency-value');
  result.audioSent = await page.textContent('#stat-audio');
  await shot(page, '03-desktop-final.png');

  await page.click('#copy');
  result.clipboard = await page.evaluate(() => navigator.clipboard.readText());

  await page.setViewportSize(PHONE);
  await shot(page, '04-phone-final.png');
  await page.close();

  // 2. A server with no free slot: the page must say so in plain words.
  const full = await context.newPage();
  current = full;
  watchConsole(full, 'full');
  await context.grantPermissions(['microphone'], { origin: new URL(fullUrl).origin });
  await full.goto(fullUrl);
  await full.waitForSelector('#toggle[data-state="idle"]:not([disabled])', { timeout: 15_000 });
  await full.click('#toggle');
  // It waits out the refusal by itself, three times, saying so each time.
  await full.waitForSelector('#notice:not([hidden])', { timeout: 15_000 });
  result.capacityRetryText = await full.textContent('#notice-text');
  await shot(full, '05-desktop-capacity-retrying.png');
  const lastTry = () => document.querySelector('#notice-text').textContent.includes('(3 of 3)');
  await full.waitForFunction(lastTry, null, { timeout: 30_000 });
  result.capacityLastRetryText = await full.textContent('#notice-text');
  await full.waitForSelector('#toggle[data-state="idle"]', { timeout: 30_000 });
  result.capacityText = await full.textContent('#notice-text');
  result.capacityConnection = await full.textContent('#connection-text');
  await shot(full, '05-desktop-capacity.png');
  await full.setViewportSize(PHONE);
  await shot(full, '06-phone-capacity.png');
  await full.close();

  // 3. A browser without WebCodecs: the page falls back to MediaRecorder
  // (a WebM Opus stream), says so, and transcribes.
  const recorder = await context.newPage();
  current = recorder;
  watchConsole(recorder, 'recorder');
  await recorder.addInitScript(() => { delete window.AudioEncoder; });
  await recorder.addInitScript(recordRows);
  await recorder.goto(url);
  await recorder.waitForSelector('#toggle[data-state="idle"]:not([disabled])', { timeout: 15_000 });
  result.recorderCapture = await recorder.textContent('#stat-capture');
  result.recorderCaptureDetail = await recorder.getAttribute('#stat-capture', 'title');
  await recorder.click('#toggle');
  await recorder.waitForSelector('#connection[data-state="live"]', { timeout: 15_000 });
  step('live through MediaRecorder');
  await recorder.waitForSelector('.utterance[data-state="final"]', { timeout: 60_000 });
  await recorder.waitForFunction(quietAfterFinals, null, { timeout: 60_000, polling: 100 });
  step('MediaRecorder: quiet after the last final');
  await recorder.click('#toggle');
  await recorder.waitForSelector('#toggle[data-state="idle"]', { timeout: 30_000 });
  result.recorderFinals = await recorder.$$eval('.utterance[data-state="final"] .text', (ts) => ts.map((t) => t.textContent));
  result.recorderConnectionAfterStop = await recorder.textContent('#connection-text');
  await shot(recorder, '07-desktop-mediarecorder.png');
  await recorder.close();

  // 4. Neither WebCodecs nor MediaRecorder: a clear message and no Start.
  const old = await context.newPage();
  current = old;
  watchConsole(old, 'no-webcodecs');
  await old.addInitScript(() => { delete window.AudioEncoder; delete window.MediaRecorder; });
  await old.goto(url);
  await old.waitForSelector('#notice:not([hidden])', { timeout: 15_000 });
  result.unsupportedText = await old.textContent('#notice-text');
  result.unsupportedButtonDisabled = await old.isDisabled('#toggle');
  await shot(old, '08-desktop-no-webcodecs.png');
  await old.close();

  await context.close();
} catch (err) {
  if (current && !current.isClosed()) {
    await shot(current, 'failure.png').catch(() => {});
    const body = await current.textContent('body').catch(() => '');
    console.error(`demo.mjs: the page said: ${body.replace(/\s+/g, ' ').trim()}`);
  }
  throw err;
} finally {
  writeFileSync(join(artifacts, 'console.log'), consoleLines.join('\n') + '\n');
  await browser.close();
  clearTimeout(watchdog);
}

result.seconds = (Date.now() - started) / 1000;
console.log(`E2E_RESULT ${JSON.stringify(result)}`);
