// rtvoice agent playback (AudioWorklet): a jitter buffer of agent audio, flushed on barge-in.
//
// Messages in:  {type: "audio", item, samples: Float32Array}  append agent audio of item `item`
//               {type: "clear"}                                drop everything queued (audio.clear);
//                                                              takes effect at the next render quantum
//               {type: "done"}                                 the response is complete: play the tail
//                                                              without waiting for the prebuffer
// Messages out: {type: "stats", cleared, played, buffered, underruns, item, itemPlayed, playing}
//               every ~100 ms and right before a clear (cleared: true); `played` counts every sample really rendered,
//               `itemPlayed` the samples of `item` (for playback.mark).
// Playback starts once `prebufferSamples` are queued (or the response is done); running dry while the
// response is still streaming counts an underrun and re-arms the prebuffer.

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.prebuffer = o.prebufferSamples || Math.round(sampleRate * 0.06);
    this.reportEvery = Math.max(1, Math.round((sampleRate * 0.1) / 128));
    this.queue = [];
    this.buffered = 0;
    this.playing = false;
    this.done = false;
    this.played = 0;
    this.underruns = 0;
    this.item = "";
    this.itemPlayed = 0;
    this.quanta = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.type === "audio") {
      if (msg.samples.length === 0) return;
      this.queue.push({ item: msg.item, data: msg.samples, off: 0 });
      this.buffered += msg.samples.length;
      this.done = false;
    } else if (msg.type === "clear") {
      this.report(true);
      this.queue = [];
      this.buffered = 0;
      this.playing = false;
      this.done = false;
    } else if (msg.type === "done") {
      this.done = true;
    }
  }

  report(cleared = false) {
    this.port.postMessage({
      type: "stats",
      cleared,
      played: this.played,
      buffered: this.buffered,
      underruns: this.underruns,
      item: this.item,
      itemPlayed: this.itemPlayed,
      playing: this.playing,
    });
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    let k = 0;
    if (!this.playing && this.buffered > 0 && (this.buffered >= this.prebuffer || this.done)) {
      this.playing = true;
    }
    if (this.playing) {
      while (k < n && this.queue.length > 0) {
        const chunk = this.queue[0];
        const take = Math.min(n - k, chunk.data.length - chunk.off);
        out.set(chunk.data.subarray(chunk.off, chunk.off + take), k);
        chunk.off += take;
        k += take;
        this.buffered -= take;
        this.played += take;
        if (chunk.item !== this.item) {
          this.item = chunk.item;
          this.itemPlayed = 0;
        }
        this.itemPlayed += take;
        if (chunk.off >= chunk.data.length) this.queue.shift();
      }
      if (k < n) {
        if (!this.done) this.underruns++;
        this.playing = false;
      }
    }
    for (; k < n; k++) out[k] = 0;
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (++this.quanta % this.reportEvery === 0) this.report();
    return true;
  }
}

registerProcessor("rtvoice-playback", PlaybackProcessor);
