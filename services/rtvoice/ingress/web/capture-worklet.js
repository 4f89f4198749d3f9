// rtvoice microphone capture (AudioWorklet): mono float input -> PCM16 frames at the session rate.
//
// The page normally creates this node in an AudioContext already running at the session rate
// (the browser resamples the microphone), so no resampling happens here. When the context runs at
// another rate (browsers that refuse a 16 kHz context), a streaming linear-interpolation resampler
// with a one-pole low-pass in front converts `sampleRate` -> `targetRate`.
// Posts one ArrayBuffer (Int16 little-endian, `frameSamples` samples, transferred) per frame.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.targetRate = o.targetRate || 16000;
    this.frameSamples = o.frameSamples || Math.round(this.targetRate / 50); // 20 ms
    this.ratio = sampleRate / this.targetRate; // input samples per output sample
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.t = 0; // position of the next output sample, in input samples; index -1 = `prev`
    this.prev = 0;
    this.lp = 0;
    // One-pole low-pass at ~0.45 x target rate against aliasing when downsampling.
    this.alpha = this.ratio > 1 ? 1 - Math.exp((-2 * Math.PI * 0.45 * this.targetRate) / sampleRate) : 1;
    this.active = true;
    this.port.onmessage = (e) => {
      if (e.data === "stop") this.active = false;
    };
  }

  push(x) {
    const s = x > 1 ? 1 : x < -1 ? -1 : x;
    this.frame[this.filled++] = s < 0 ? s * 32768 : s * 32767;
    if (this.filled === this.frameSamples) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.frame = new Int16Array(this.frameSamples);
      this.filled = 0;
    }
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input || !this.active) return this.active;
    if (this.ratio === 1) {
      for (let i = 0; i < input.length; i++) this.push(input[i]);
      return true;
    }
    const n = input.length;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      this.lp += this.alpha * (input[i] - this.lp);
      x[i] = this.lp;
    }
    while (this.t < n - 1) {
      const i = Math.floor(this.t);
      const f = this.t - i;
      const a = i < 0 ? this.prev : x[i];
      const b = x[i + 1];
      this.push(a + f * (b - a));
      this.t += this.ratio;
    }
    this.t -= n;
    this.prev = x[n - 1];
    return true;
  }
}

registerProcessor("rtvoice-capture", CaptureProcessor);
