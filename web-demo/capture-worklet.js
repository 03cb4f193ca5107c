// steno web demo, fallback capture: microphone samples in (128-frame render
// quanta), 20 ms Float32Array frames out to the page, which wraps them in
// AudioData for the Opus encoder. Used only where MediaStreamTrackProcessor is
// missing (Firefox, Safari) or when the page is opened with ?capture=worklet.

class StenoCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.frameSamples = options.processorOptions.frameSamples;
    this.frame = new Float32Array(this.frameSamples);
    this.filled = 0;
  }

  process(inputs) {
    // The first channel only: the page asks for mono, and the server
    // transcribes one voice.
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      let at = 0;
      while (at < channel.length) {
        const n = Math.min(channel.length - at, this.frameSamples - this.filled);
        this.frame.set(channel.subarray(at, at + n), this.filled);
        this.filled += n;
        at += n;
        if (this.filled === this.frameSamples) {
          // Transferred, not copied: the page owns this buffer from now on.
          this.port.postMessage(this.frame, [this.frame.buffer]);
          this.frame = new Float32Array(this.frameSamples);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor('steno-capture', StenoCapture);
