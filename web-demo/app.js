// steno web demo: the microphone in, Opus packets out to /v1/listen (protocol
// v1, docs/protocol.md), the server's partial and final transcripts back onto
// the page.
//
// Modules: capture.js (microphone -> Opus packets), transcript.js (messages ->
// rows), messages.js (error and close codes -> sentences), this file (the
// page's controls and one Session per Start). Plain ES modules, no framework
// and no build step: the server serves this folder as it is.

import { capturePath, FRAME_US, OpusCapture, RecorderCapture } from './capture.js';
import { closeSentence, errorSentence, retrySentence } from './messages.js';
import { Transcript } from './transcript.js';

/** How long Stop waits for the server's remaining finals and its `end`. */
const END_TIMEOUT_MS = 15_000;
/** Unsent socket bytes (about 8 s of audio at 32 kb/s) before the page warns. */
const SLOW_NETWORK_BYTES = 32_000;
/** How long "Settled" stays up after a final before going back to "Listening". */
const SETTLED_MS = 1_500;
/** A full or loading server is tried again this many times before the page gives up. */
const MAX_RETRIES = 3;
/**
 * Each wait is the server's retry_after_s stretched by up to this fraction at
 * random, so pages refused together do not all come back at the same moment.
 */
const RETRY_JITTER = 0.5;
/** Send times kept for latency: a minute of 20 ms packets. */
const MAX_SENT_RECORDS = 3_000;

const $ = (id) => document.getElementById(id);
const ui = {
  connection: $('connection'),
  connectionText: $('connection-text'),
  toggle: $('toggle'),
  toggleLabel: $('toggle-label'),
  level: $('level'),
  speech: $('speech'),
  speechText: $('speech-text'),
  latency: $('latency-value'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  noticeClose: $('notice-close'),
  copy: $('copy'),
  copyLabel: $('copy-label'),
  statUtterances: $('stat-utterances'),
  statAudio: $('stat-audio'),
  statProcessing: $('stat-processing'),
  statSession: $('stat-session'),
  statCapture: $('stat-capture'),
};

const transcript = new Transcript({
  list: $('transcript'),
  empty: $('empty'),
  copy: ui.copy,
  clear: $('clear'),
});

// ---------------------------------------------------------------- page state

function setConnection(state, text) {
  ui.connection.dataset.state = state;
  ui.connectionText.textContent = text;
}

function setSpeech(state, text) {
  ui.speech.dataset.state = state;
  ui.speechText.textContent = text;
}

function setButton(state) {
  ui.toggle.dataset.state = state;
  ui.toggle.setAttribute('aria-pressed', String(state === 'live'));
  ui.toggle.disabled = state === 'busy' || state === 'unsupported';
  ui.toggleLabel.textContent = { idle: 'Start', live: 'Stop', busy: 'Finishing…', unsupported: 'Start' }[state];
}

let noticeTimer = null;

/**
 * Shows one plain sentence. With `countdownS`, `render(secondsLeft)` runs
 * again every second down to 0 (for "Try again in N seconds").
 */
function showNotice(kind, render, countdownS) {
  clearInterval(noticeTimer);
  ui.notice.dataset.kind = kind;
  ui.notice.hidden = false;
  let left = countdownS;
  setNoticeText(render(left));
  if (countdownS == null) return;
  noticeTimer = setInterval(() => {
    left -= 1;
    setNoticeText(render(left));
    if (left <= 0) clearInterval(noticeTimer);
  }, 1000);
}

/** The sentence as text, with short asides such as "(24 of 24)" kept on one line. */
function setNoticeText(sentence) {
  ui.noticeText.replaceChildren(...sentence.split(/(\([^()]{1,16}\))/).map((part, i) => {
    if (i % 2 === 0) return document.createTextNode(part);
    const span = document.createElement('span');
    span.className = 'nowrap';
    span.textContent = part;
    return span;
  }));
}

function hideNotice() {
  clearInterval(noticeTimer);
  ui.notice.hidden = true;
}

ui.noticeClose.addEventListener('click', hideNotice);

ui.copy.addEventListener('click', async () => {
  const text = transcript.text();
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Older browsers, or a denied clipboard permission: the selection way.
    const area = document.createElement('textarea');
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  ui.copyLabel.textContent = 'Copied';
  setTimeout(() => { ui.copyLabel.textContent = 'Copy transcript'; }, 1500);
});

// ---------------------------------------------------------------- level meter

let level = 0; // latest RMS of the microphone, 0..1
let shownLevel = 0;

function drawLevel() {
  // -60 dBFS (a quiet room) to 0 dBFS fills the bar; fast attack, slow release.
  const db = 20 * Math.log10(level + 1e-9);
  const target = Math.min(1, Math.max(0, (db + 60) / 60));
  shownLevel = target > shownLevel ? target : shownLevel * 0.9 + target * 0.1;
  ui.level.style.clipPath = `inset(0 ${(100 - shownLevel * 100).toFixed(1)}% 0 0 round 999px)`;
  requestAnimationFrame(drawLevel);
}
requestAnimationFrame(drawLevel);

// ---------------------------------------------------------------- session

/** One microphone stream and its WebSocket, from Start to the server's close. */
class Session {
  constructor() {
    this.ws = null;
    this.stream = null;        // the microphone
    this.capture = null;       // its Opus encoding, once the server is ready
    this.sentMs = 0;           // session audio sent so far (sum of packet durations)
    this.sent = [];            // {endMs, at}: when each packet's audio left the page
    this.opened = false;       // the WebSocket upgrade succeeded
    this.endSent = false;      // `end` went out: no audio after it
    this.ending = false;       // Stop was pressed: a close is expected
    this.failed = false;       // the page gave up (microphone, encoder): not a clean finish
    this.errorShown = false;   // a notice already explained the close
    this.closeLabel = null;    // the connection pill's word for a refusal
    this.finals = 0;
    this.retries = 0;          // refusals waited out so far
    this.retryWaitS = null;    // set by a refusal the page will wait out
    this.retryTimer = null;    // the pending reconnect
    this.endTimer = null;
    this.settledTimer = null;
  }

  async start() {
    setButton('live');
    setConnection('connecting', 'Connecting…');
    setSpeech('off', 'Waiting for the microphone');
    hideNotice();
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: { ideal: 1 }, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      const denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
      this.fail(denied
        ? 'The microphone is blocked for this page. Allow it in the browser\'s site settings and press Start again.'
        : `No microphone could be opened (${err && err.name ? err.name : err}).`);
      return;
    }
    if (this.ending) {
      // Stop was pressed while the browser asked for the microphone.
      await this.releaseMicrophone();
      this.finish();
      return;
    }
    this.connect();
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = new URLSearchParams({ encoding: path.encoding, partials: 'true' });
    // A server with auth.token needs it here: browsers cannot set headers on
    // a WebSocket, so the page passes on its own ?token=.
    const token = new URLSearchParams(location.search).get('token');
    if (token) query.set('token', token);
    const ws = new WebSocket(`${scheme}//${location.host}/v1/listen?${query}`);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => { this.opened = true; };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') this.onMessage(JSON.parse(ev.data));
    };
    ws.onclose = (ev) => this.onClose(ev);
    this.ws = ws;
  }

  onMessage(m) {
    switch (m.type) {
      case 'ready':
        ui.statSession.textContent = m.session_id;
        if (this.ending) break; // Stop came first: the server's `end` follows
        setConnection('live', 'Live');
        setSpeech('listening', 'Listening');
        this.startCapture().catch((err) => this.fail(`The audio pipeline failed to start: ${err.message || err}`));
        break;
      case 'speech_started':
        clearTimeout(this.settledTimer);
        setSpeech('speech', 'Hearing speech');
        transcript.speechStarted(m);
        break;
      case 'partial':
        transcript.partial(m);
        break;
      case 'final':
        this.onFinal(m);
        break;
      case 'end':
        clearTimeout(this.endTimer);
        break;
      case 'error':
        this.onError(m);
        break;
      default:
        break; // a newer server may add message types
    }
  }

  onFinal(m) {
    const latencyMs = this.latencyOf(m.end_ms);
    console.info(`final ${m.utterance}: on screen ${latencyMs} ms after its end (${m.end_ms} ms), model ${m.processing_ms} ms`);
    transcript.final(m, latencyMs);
    this.finals += 1;
    ui.statUtterances.textContent = String(this.finals);
    ui.statProcessing.textContent = `${m.processing_ms} ms`;
    if (latencyMs != null) ui.latency.textContent = `${latencyMs} ms`;
    setSpeech('settled', 'Settled');
    clearTimeout(this.settledTimer);
    this.settledTimer = setTimeout(() => {
      if (ui.speech.dataset.state !== 'settled') return;
      if (this.capture) setSpeech('listening', 'Listening');
      else setSpeech('off', 'Microphone off');
    }, SETTLED_MS);
  }

  onError(m) {
    if (m.code === 'over_capacity' || m.code === 'not_ready') {
      this.closeLabel = m.code === 'over_capacity' ? 'Server full' : 'Server loading';
      if (!this.ending && this.retries < MAX_RETRIES) {
        // Wait it out and try again (onClose reconnects), saying so.
        this.retries += 1;
        const attempt = this.retries;
        const waitS = Math.max(1, Math.round((m.retry_after_s ?? 5) * (1 + RETRY_JITTER * Math.random())));
        this.retryWaitS = waitS;
        showNotice('warning', (left) => retrySentence(m.code, m.message, left, attempt, MAX_RETRIES), waitS);
      } else {
        // Counted down on the page, so "in N seconds" stays true.
        showNotice('error', (left) => errorSentence(m.code, m.message, left), m.retry_after_s ?? null);
      }
    } else {
      const passing = m.code === 'bad_audio' || m.code === 'bad_request'; // the session goes on
      showNotice(passing ? 'warning' : 'error', () => errorSentence(m.code, m.message, null));
    }
    this.errorShown = true;
  }

  /**
   * Latency of a final, as the page can measure it: from the moment this page
   * sent the packet that holds the final's `end_ms` to the final's arrival.
   * The server ends an utterance's audio a short tail (200 ms) after the last
   * voiced frame, so this is "end of speech to text on screen" less about that
   * tail; it covers the VAD hangover, the queue, the model and both network
   * legs. The other way, wall-clock time since session time `end_ms`, would
   * also count capture and encoder buffering and drift with any gap in the
   * stream, so the page maps session time to send time packet by packet.
   */
  latencyOf(endMs) {
    const i = this.sent.findIndex((p) => p.endMs >= endMs);
    const hit = i >= 0 ? this.sent[i] : this.sent[this.sent.length - 1];
    if (!hit) return null;
    // Finals come in order: nothing before this packet is needed again.
    if (i > 0) this.sent.splice(0, i);
    return Math.max(0, Math.round(performance.now() - hit.at));
  }

  async startCapture() {
    if (path.kind === 'recorder') {
      this.capture = new RecorderCapture(this.stream, path.mimeType, {
        onChunk: (bytes, durationMs) => this.sendBytes(bytes, durationMs),
        onLevel: (rms) => { level = rms; },
        onError: (sentence) => this.fail(sentence),
      });
      await this.capture.start();
      return;
    }
    this.capture = new OpusCapture(this.stream, {
      onPacket: (chunk) => this.sendPacket(chunk),
      onLevel: (rms) => { level = rms; },
      onError: (sentence) => this.fail(sentence),
      useWorklet: new URLSearchParams(location.search).get('capture') === 'worklet',
    });
    await this.capture.start();
  }

  sendPacket(chunk) {
    const packet = new Uint8Array(chunk.byteLength);
    chunk.copyTo(packet);
    this.sendBytes(packet, (chunk.duration ?? FRAME_US) / 1000);
  }

  /** One Opus packet, or one slice of the recorder's stream, of `durationMs` of audio. */
  sendBytes(bytes, durationMs) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.endSent) return;
    ws.send(bytes);
    this.sentMs += durationMs;
    this.sent.push({ endMs: this.sentMs, at: performance.now() });
    if (this.sent.length > MAX_SENT_RECORDS) this.sent.shift();
    ui.statAudio.textContent = `${(this.sentMs / 1000).toFixed(1)} s`;
    if (ws.bufferedAmount > SLOW_NETWORK_BYTES) {
      showNotice('warning', () => 'The network is not keeping up with the audio; the transcript will lag behind.');
    }
  }

  /** Stop: the last audio, then `end`; the server sends its finals, `end`, and closes. */
  async stop() {
    this.ending = true;
    setButton('busy');
    if (this.retryTimer) {
      // Stopped while waiting to try a full server again.
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      hideNotice();
      await this.releaseMicrophone();
      setConnection('idle', 'Stopped');
      this.finish();
      return;
    }
    if (!this.ws) return; // still asking for the microphone; start() finishes
    setConnection('finishing', 'Finishing…');
    await this.releaseMicrophone(); // flushes the encoder: the last packets go out first
    setSpeech('off', 'Microphone off');
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: 'end' }));
      this.endSent = true;
      this.endTimer = setTimeout(() => {
        showNotice('warning', () => 'The server did not finish in time; the last sentence may be missing.');
        this.errorShown = true;
        this.ws.close(1000, 'no end from server');
      }, END_TIMEOUT_MS);
    } else if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close();
    }
  }

  async releaseMicrophone() {
    const capture = this.capture;
    this.capture = null;
    if (capture) {
      await capture.stop();
      capture.close();
    }
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    level = 0;
  }

  async onClose(ev) {
    clearTimeout(this.endTimer);
    if (this.retryWaitS != null && !this.ending) {
      // A refusal the page waits out: keep the microphone, connect again.
      const waitS = this.retryWaitS;
      this.retryWaitS = null;
      setConnection('connecting', `${this.closeLabel}, waiting`);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.opened = false;
        this.errorShown = false;
        this.closeLabel = null;
        setConnection('connecting', 'Connecting…');
        this.connect();
      }, waitS * 1000);
      return;
    }
    await this.releaseMicrophone();
    const clean = ev.code === 1000 && this.ending && !this.failed;
    if (!this.opened) {
      this.closeLabel = 'No connection';
      this.explainRefusal();
    } else if (!clean && !this.errorShown) {
      showNotice('error', () => closeSentence(ev.code, ev.reason));
    }
    setConnection(clean ? 'idle' : 'error', clean ? 'Finished' : this.closeLabel || 'Disconnected');
    this.finish();
  }

  /** A refused upgrade tells the page nothing; ask the server what it can say. */
  async explainRefusal() {
    showNotice('error', () => 'Could not connect to the server.');
    let sentence = 'Could not connect to the server: it may be down, or unreachable from this network.';
    try {
      const health = await fetch('/health', { cache: 'no-store' });
      if (health.ok) {
        sentence = 'The server is up but refused this page\'s connection. It may need an access token '
          + '(open this page with ?token=YOUR_TOKEN), or accept only pages from other addresses.';
      } else if (health.status === 503) {
        sentence = 'The server is still loading its speech model. Try again in a few seconds.';
      }
    } catch {
      // the network is down: keep the first sentence
    }
    showNotice('error', () => sentence);
  }

  fail(sentence) {
    showNotice('error', () => sentence);
    this.errorShown = true;
    this.failed = true;
    this.ending = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      this.ws.close(1000, 'client error');
    } else {
      this.releaseMicrophone();
      setConnection('error', 'Disconnected');
      this.finish();
    }
  }

  finish() {
    if (session !== this) return;
    session = null;
    clearTimeout(this.settledTimer);
    setButton('idle');
    setSpeech('off', 'Microphone off');
  }
}

let session = null;

ui.toggle.addEventListener('click', () => {
  if (session) {
    session.stop();
  } else {
    session = new Session();
    session.start();
  }
});

// Where this browser cannot do it, say so before anyone presses Start.
/** The capture path this browser takes (capture.js), known before Start. */
let path = null;

capturePath().then((found) => {
  path = found;
  const reason = found.unsupported;
  ui.statCapture.textContent = found.label ?? 'none';
  ui.statCapture.title = found.detail ?? '';
  if (!reason) console.info(`capture: ${found.detail}`);
  if (reason) {
    setButton('unsupported');
    setConnection('error', 'Unsupported browser');
    showNotice('error', () => reason);
  } else {
    setButton('idle');
  }
});
