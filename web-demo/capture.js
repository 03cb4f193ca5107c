// steno web demo, capture: a microphone MediaStream in, audio for
// /v1/listen out, plus how loud the microphone is. Two paths:
//
// - WebCodecs (OpusCapture): MediaStreamTrackProcessor (Chrome, Edge) or an
//   AudioWorklet (capture-worklet.js: Firefox, Safari, or ?capture=worklet)
//   -> AudioData -> AudioEncoder, 20 ms raw Opus packets (encoding=opus).
// - MediaRecorder (RecorderCapture), where AudioEncoder is missing: a WebM
//   or Ogg Opus stream cut every RECORDER_SLICE_MS (encoding=webm_opus or
//   ogg_opus); the server reads the container.

/** Opus frame length asked of the encoder, in microseconds. */
export const FRAME_US = 20_000;
/** Enough for clear speech; the server decodes to 16 kHz anyway. */
export const BITRATE_BPS = 32_000;

/** How often MediaRecorder hands over a slice of its stream. */
export const RECORDER_SLICE_MS = 100;
/** The container streams the server reads, in the order the page prefers. */
const RECORDER_TYPES = [
  { mimeType: 'audio/webm;codecs=opus', encoding: 'webm_opus', label: 'MediaRecorder', detail: 'MediaRecorder, WebM Opus stream' },
  { mimeType: 'audio/ogg;codecs=opus', encoding: 'ogg_opus', label: 'MediaRecorder', detail: 'MediaRecorder, Ogg Opus stream' },
];

/**
 * The capture path this browser can take: { kind: 'webcodecs' | 'recorder',
 * encoding, label (short, for the page), detail, mimeType? }, or
 * { unsupported: sentence }.
 */
export async function capturePath() {
  const microphone = microphoneUnsupported();
  if (microphone) return { unsupported: microphone };
  const webcodecs = await webCodecsUnsupported();
  if (webcodecs === null) return { kind: 'webcodecs', encoding: 'opus', label: 'WebCodecs', detail: 'WebCodecs AudioEncoder, raw Opus packets' };
  const recorder = typeof MediaRecorder === 'function'
    && RECORDER_TYPES.find((t) => MediaRecorder.isTypeSupported(t.mimeType));
  if (recorder) return { kind: 'recorder', ...recorder };
  return { unsupported: webcodecs };
}

/** Why no page here can have the microphone, or null. */
function microphoneUnsupported() {
  if (!window.isSecureContext) {
    return 'Browsers only give the microphone to secure pages: open this demo over https://, '
      + 'or on this machine at http://localhost.';
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return 'This browser does not give web pages access to a microphone.';
  }
  return null;
}

/** Says plainly why the WebCodecs path is not possible here, or returns null. */
async function webCodecsUnsupported() {
  if (typeof AudioEncoder !== 'function' || typeof AudioData !== 'function') {
    return 'This browser cannot encode audio for streaming: it lacks the WebCodecs AudioEncoder '
      + 'and a MediaRecorder that writes Opus. Please use a current version of Chrome, Edge or Firefox.';
  }
  if (typeof MediaStreamTrackProcessor !== 'function' && typeof AudioWorkletNode !== 'function') {
    return 'This browser cannot read raw samples from the microphone (no MediaStreamTrackProcessor or AudioWorklet).';
  }
  try {
    const { supported } = await AudioEncoder.isConfigSupported({
      codec: 'opus', sampleRate: 48_000, numberOfChannels: 1, bitrate: BITRATE_BPS,
    });
    if (!supported) return 'This browser\'s AudioEncoder cannot encode Opus, which the server needs.';
  } catch (err) {
    return `This browser's AudioEncoder refused the Opus settings (${err.message || err}).`;
  }
  return null;
}

/** One microphone stream encoded to Opus until `stop()`. */
export class OpusCapture {
  /**
   * @param {MediaStream} stream the microphone
   * @param {{onPacket: (chunk: EncodedAudioChunk) => void, onLevel: (rms: number) => void,
   *          onError: (sentence: string) => void, useWorklet: boolean}} hooks
   */
  constructor(stream, { onPacket, onLevel, onError, useWorklet }) {
    this.stream = stream;
    this.onLevel = onLevel;
    this.onError = onError;
    this.useWorklet = useWorklet || typeof MediaStreamTrackProcessor !== 'function';
    this.release = null; // undoes whichever capture path runs
    this.encoder = new AudioEncoder({
      output: onPacket,
      error: (err) => onError(`The browser's Opus encoder failed: ${err.message || err}`),
    });
  }

  async start() {
    if (this.useWorklet) {
      await this.startWorklet();
    } else {
      this.startTrackProcessor();
    }
  }

  /** Stops capturing; when it resolves, every packet has gone to onPacket. */
  async stop() {
    const release = this.release;
    this.release = null;
    if (release) await release();
    if (this.encoder.state === 'configured') await this.encoder.flush().catch(() => {});
    this.onLevel(0);
  }

  close() {
    if (this.encoder.state !== 'closed') this.encoder.close();
  }

  startTrackProcessor() {
    const track = this.stream.getAudioTracks()[0];
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    let running = true;
    this.release = async () => {
      running = false;
      await reader.cancel().catch(() => {});
    };
    (async () => {
      while (running) {
        const { value, done } = await reader.read();
        if (done) break;
        this.encode(value);
      }
    })().catch((err) => this.onError(`The microphone stream failed: ${err.message || err}`));
  }

  async startWorklet() {
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule('capture-worklet.js');
    const source = ctx.createMediaStreamSource(this.stream);
    const node = new AudioWorkletNode(ctx, 'steno-capture', {
      channelCount: 1,
      channelCountMode: 'explicit',
      processorOptions: { frameSamples: Math.round((ctx.sampleRate * FRAME_US) / 1e6) },
    });
    let timestampUs = 0;
    node.port.onmessage = (ev) => {
      const samples = ev.data;
      const data = new AudioData({
        format: 'f32-planar',
        sampleRate: ctx.sampleRate,
        numberOfFrames: samples.length,
        numberOfChannels: 1,
        timestamp: timestampUs,
        data: samples,
      });
      timestampUs += (samples.length * 1e6) / ctx.sampleRate;
      this.encode(data);
    };
    // A worklet only runs while connected to the output; through a muted gain
    // so the speaker does not echo the microphone.
    const mute = ctx.createGain();
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(ctx.destination);
    this.release = async () => {
      node.port.onmessage = null;
      source.disconnect();
      await ctx.close().catch(() => {});
    };
  }

  encode(data) {
    try {
      if (this.encoder.state === 'unconfigured') {
        // The encoder takes the microphone's own rate and channel count
        // (usually 48 kHz mono); the server decodes any Opus to 16 kHz.
        this.encoder.configure({
          codec: 'opus',
          sampleRate: data.sampleRate,
          numberOfChannels: data.numberOfChannels,
          bitrate: BITRATE_BPS,
          opus: { frameDuration: FRAME_US, format: 'opus', application: 'voip', signal: 'voice' },
        });
      }
      this.onLevel(rms(data));
      if (this.encoder.state === 'configured') this.encoder.encode(data);
    } finally {
      data.close();
    }
  }
}

/**
 * One microphone stream as a WebM or Ogg Opus byte stream until `stop()`,
 * for browsers without AudioEncoder. The level comes from an AnalyserNode.
 */
export class RecorderCapture {
  /**
   * @param {MediaStream} stream the microphone
   * @param {string} mimeType one of RECORDER_TYPES
   * @param {{onChunk: (bytes: ArrayBuffer, durationMs: number) => void,
   *          onLevel: (rms: number) => void, onError: (sentence: string) => void}} hooks
   */
  constructor(stream, mimeType, { onChunk, onLevel, onError }) {
    this.stream = stream;
    this.mimeType = mimeType;
    this.onChunk = onChunk;
    this.onLevel = onLevel;
    this.onError = onError;
    this.recorder = null;
    this.levelTimer = null;
    this.ctx = null;
    // Slices are read in order: each arrayBuffer() waits for the one before.
    this.sending = Promise.resolve();
  }

  async start() {
    this.recorder = new MediaRecorder(this.stream, { mimeType: this.mimeType, audioBitsPerSecond: BITRATE_BPS });
    let last = performance.now();
    this.recorder.ondataavailable = (ev) => {
      const now = performance.now();
      const durationMs = now - last;
      last = now;
      if (!ev.data || ev.data.size === 0) return;
      this.sending = this.sending
        .then(() => ev.data.arrayBuffer())
        .then((bytes) => this.onChunk(bytes, durationMs));
    };
    this.recorder.onerror = (ev) => this.onError(`The browser's recorder failed: ${ev.error?.message || ev.error || 'unknown error'}`);
    this.recorder.start(RECORDER_SLICE_MS);
    this.ctx = new AudioContext();
    const analyser = this.ctx.createAnalyser();
    this.ctx.createMediaStreamSource(this.stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.levelTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const x of samples) sum += x * x;
      this.onLevel(Math.sqrt(sum / samples.length));
    }, 50);
  }

  /** Stops recording; when it resolves, every slice has gone to onChunk. */
  async stop() {
    clearInterval(this.levelTimer);
    const recorder = this.recorder;
    this.recorder = null;
    if (recorder && recorder.state !== 'inactive') {
      const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
      recorder.stop();
      await stopped;
    }
    await this.sending.catch(() => {});
    if (this.ctx) await this.ctx.close().catch(() => {});
    this.ctx = null;
    this.onLevel(0);
  }

  close() {}
}

/** Root mean square of the first channel, 0..1. */
function rms(audioData) {
  const frames = audioData.numberOfFrames;
  const samples = new Float32Array(frames);
  audioData.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
  let sum = 0;
  for (let i = 0; i < frames; i++) sum += samples[i] * samples[i];
  return Math.sqrt(sum / Math.max(frames, 1));
}
