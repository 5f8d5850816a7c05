// The softphone's audio worklets, running on the browser's audio thread.
//
// ivr-capture: the microphone, low-passed and decimated to the call's rate
// (resample.js), cut into 20 ms frames of 16-bit PCM (docs/protocol.md: one frame
// per binary message). Each frame is posted to the page, which sends it.
//
// ivr-playback: the server's 20 ms frames through a small jitter buffer,
// interpolated up to the AudioContext's rate. Playout starts once PRIME
// frames are queued; an empty queue while playing plays silence, counts an
// underrun and waits for PRIME frames again; a frame arriving at a full
// queue (MAX frames) pushes out the oldest, which bounds the delay. The same
// rules as the server's own per-leg buffer (docs/protocol.md), with one more
// frame of priming because a browser's audio callbacks are less regular.
// The server's clock and the sound card's are not the same clock, so the queue
// may creep up; when it has not dropped below TRIM_ABOVE frames for a whole
// second, one frame is skipped, which keeps the delay near PRIME frames.

import { Resampler, toFloat32, toInt16 } from "./resample.js";

const FRAME_MS = 20;

class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { callRate } = options.processorOptions;
    this.resampler = new Resampler(sampleRate, callRate);
    this.frameLength = (callRate * FRAME_MS) / 1000;
    this.frame = new Float32Array(this.frameLength);
    this.filled = 0;
    this.frames = 0;
    this.peak = 0;
    this.running = true;
    this.port.onmessage = (e) => {
      if (e.data === "stop") this.running = false;
    };
  }

  process(inputs) {
    if (!this.running) return false;
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    let mono = channels[0];
    if (channels.length > 1) {
      mono = new Float32Array(channels[0].length);
      for (const ch of channels) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / channels.length;
    }
    const out = this.resampler.process(mono);
    for (let i = 0; i < out.length; i++) {
      const v = out[i];
      this.frame[this.filled++] = v;
      const a = Math.abs(v);
      if (a > this.peak) this.peak = a;
      if (this.filled === this.frameLength) {
        const pcm = toInt16(this.frame);
        this.port.postMessage({ pcm: pcm.buffer, peak: this.peak }, [pcm.buffer]);
        this.frames++;
        this.filled = 0;
        this.peak = 0;
      }
    }
    return true;
  }
}

const PRIME = 3; // frames queued before playout starts: 60 ms
const MAX = 10; // frames at most: 200 ms
const TRIM_ABOVE = PRIME + 2; // frames always queued for a second: one too many
const TRIM_WINDOW = 50; // frames played: one second

class Playback extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { callRate } = options.processorOptions;
    this.resampler = new Resampler(callRate, sampleRate);
    this.frameLength = (callRate * FRAME_MS) / 1000;
    this.silentFrame = new Float32Array(this.frameLength);
    this.queue = [];
    this.playing = false;
    this.fifo = new Float32Array(8192);
    this.fifoLength = 0;
    this.stats = { received: 0, played: 0, underruns: 0, dropped: 0, trimmed: 0, depth: 0, peak: 0 };
    this.lowest = Infinity; // the smallest queue seen in this trim window
    this.windowFrames = 0;
    this.sinceReport = 0;
    this.running = true;
    this.port.onmessage = (e) => {
      if (e.data === "stop") {
        this.running = false;
        return;
      }
      this.queue.push(toFloat32(new Int16Array(e.data)));
      this.stats.received++;
      if (this.queue.length > MAX) {
        this.queue.shift();
        this.stats.dropped++;
      }
    };
  }

  nextFrame() {
    if (!this.playing && this.queue.length >= PRIME) this.playing = true;
    if (this.playing) {
      this.lowest = Math.min(this.lowest, this.queue.length);
      if (++this.windowFrames >= TRIM_WINDOW) {
        if (this.lowest > TRIM_ABOVE && this.queue.length > 1) {
          this.queue.shift();
          this.stats.trimmed++;
        }
        this.lowest = Infinity;
        this.windowFrames = 0;
      }
      const frame = this.queue.shift();
      if (frame) {
        this.stats.played++;
        let peak = 0;
        for (let i = 0; i < frame.length; i++) peak = Math.max(peak, Math.abs(frame[i]));
        this.stats.peak = Math.max(this.stats.peak, peak);
        return frame;
      }
      this.playing = false;
      this.stats.underruns++;
    }
    return this.silentFrame;
  }

  process(_inputs, outputs) {
    if (!this.running) return false;
    const out = outputs[0];
    const need = out[0].length;
    while (this.fifoLength < need) {
      const up = this.resampler.process(this.nextFrame());
      if (this.fifoLength + up.length > this.fifo.length) {
        const bigger = new Float32Array(2 * (this.fifoLength + up.length));
        bigger.set(this.fifo.subarray(0, this.fifoLength));
        this.fifo = bigger;
      }
      this.fifo.set(up, this.fifoLength);
      this.fifoLength += up.length;
    }
    for (const channel of out) channel.set(this.fifo.subarray(0, need));
    this.fifo.copyWithin(0, need, this.fifoLength);
    this.fifoLength -= need;
    this.sinceReport += need;
    if (this.sinceReport >= sampleRate / 5) {
      this.stats.depth = this.queue.length;
      this.port.postMessage({ ...this.stats, delayMs: this.queue.length * FRAME_MS });
      this.stats.peak = 0;
      this.sinceReport = 0;
    }
    return true;
  }
}

registerProcessor("ivr-capture", Capture);
registerProcessor("ivr-playback", Playback);
