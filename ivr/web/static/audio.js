// The softphone's audio on the page's side: the AudioContext, the
// microphone, the two worklets (worklet.js), DTMF and ring tones.
//
// Browsers start an AudioContext suspended unless it is created or resumed
// during a user gesture (the autoplay policy), so `unlock()` must be called
// synchronously from a click handler, before any `await`.

export const DTMF_HZ = {
  1: [697, 1209], 2: [697, 1336], 3: [697, 1477], A: [697, 1633],
  4: [770, 1209], 5: [770, 1336], 6: [770, 1477], B: [770, 1633],
  7: [852, 1209], 8: [852, 1336], 9: [852, 1477], C: [852, 1633],
  "*": [941, 1209], 0: [941, 1336], "#": [941, 1477], D: [941, 1633],
}; // ITU-T Q.23: row and column frequencies of each key

/** Why the microphone could not be opened, in words for the person at the page. */
export class MicrophoneError extends Error {
  constructor(kind, cause) {
    const words = {
      denied:
        "The microphone was refused. Allow this page to use the microphone " +
        "(the camera or lock icon beside the address), then try again.",
      missing: "No microphone was found. Connect one, then try again.",
      busy: "The microphone is in use by another program or could not be started.",
      insecure:
        "This page cannot use a microphone here: browsers allow it only over HTTPS " +
        "or on this computer (localhost).",
      other: "The microphone could not be opened.",
    };
    super(words[kind] ?? words.other);
    this.kind = kind;
    this.cause = cause;
  }
}

export class AudioEngine {
  constructor() {
    this.ctx = null;
    this.loaded = null;
  }

  /** Create or resume the AudioContext. Call it inside the click handler, before awaiting. */
  unlock() {
    if (!this.ctx) this.ctx = new AudioContext({ latencyHint: "interactive" });
    const resumed = this.ctx.state === "running" ? Promise.resolve() : this.ctx.resume();
    if (!this.loaded) {
      this.loaded = this.ctx.audioWorklet.addModule("/static/worklet.js").catch((err) => {
        this.loaded = null;
        throw err;
      });
    }
    return Promise.all([resumed, this.loaded]);
  }

  get running() {
    return this.ctx !== null && this.ctx.state === "running";
  }

  /** Open the microphone with no processing, so DTMF and speech reach the switch intact. */
  async openMicrophone() {
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      throw new MicrophoneError("insecure");
    }
    try {
      return await navigator.mediaDevices.getUserMedia({
        audio: {
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
          channelCount: { ideal: 1 },
        },
        video: false,
      });
    } catch (err) {
      const kind =
        err?.name === "NotAllowedError" || err?.name === "SecurityError" ? "denied"
        : err?.name === "NotFoundError" || err?.name === "OverconstrainedError" ? "missing"
        : err?.name === "NotReadableError" || err?.name === "AbortError" ? "busy"
        : "other";
      throw new MicrophoneError(kind, err);
    }
  }

  /**
   * Wire a call's audio: the microphone through ivr-capture (each 20 ms frame
   * to `onFrame(ArrayBuffer, peak)`), and ivr-playback to the speaker
   * (`push(ArrayBuffer)` queues a server frame; `onStats` gets its counters).
   */
  startCall(stream, callRate, { onFrame, onStats }) {
    const ctx = this.ctx;
    const source = ctx.createMediaStreamSource(stream);
    const capture = new AudioWorkletNode(ctx, "ivr-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: "explicit",
      channelInterpretation: "speakers",
      processorOptions: { callRate },
    });
    const mute = ctx.createGain();
    mute.gain.value = 0; // the capture node must reach the destination to be run; silently
    source.connect(capture).connect(mute).connect(ctx.destination);
    capture.port.onmessage = (e) => onFrame(e.data.pcm, e.data.peak);

    const playback = new AudioWorkletNode(ctx, "ivr-playback", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { callRate },
    });
    playback.connect(ctx.destination);
    playback.port.onmessage = (e) => onStats(e.data);

    return {
      push(frame) {
        playback.port.postMessage(frame, [frame]);
      },
      stop() {
        capture.port.postMessage("stop");
        playback.port.postMessage("stop");
        capture.port.onmessage = null;
        playback.port.onmessage = null;
        source.disconnect();
        capture.disconnect();
        mute.disconnect();
        playback.disconnect();
        for (const track of stream.getTracks()) track.stop();
      },
    };
  }

  /** Play a key's DTMF tone locally (the switch gets the digit as a message). */
  tone(digit, ms = 120) {
    if (!this.running) return;
    const pair = DTMF_HZ[digit];
    if (!pair) return;
    const ctx = this.ctx;
    const gain = ctx.createGain();
    const t = ctx.currentTime;
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(0.12, t + 0.005);
    gain.gain.setValueAtTime(0.12, t + ms / 1000 - 0.005);
    gain.gain.linearRampToValueAtTime(0, t + ms / 1000);
    gain.connect(ctx.destination);
    for (const hz of pair) {
      const osc = ctx.createOscillator();
      osc.frequency.value = hz;
      osc.connect(gain);
      osc.start(t);
      osc.stop(t + ms / 1000);
      osc.onended = () => gain.disconnect();
    }
  }

  /** Ring (400 + 450 Hz, 0.4 s on, 0.2 s off, twice, every 3 s) until the returned stop() is called. */
  ring() {
    if (!this.running) return () => {};
    const ctx = this.ctx;
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    const oscs = [400, 450].map((hz) => {
      const o = ctx.createOscillator();
      o.frequency.value = hz;
      o.connect(gain);
      o.start();
      return o;
    });
    const t0 = ctx.currentTime + 0.05;
    for (let cycle = 0; cycle < 10; cycle++) {
      const c = t0 + cycle * 3;
      for (const [on, off] of [[0, 0.4], [0.6, 1.0]]) {
        gain.gain.setValueAtTime(0.08, c + on);
        gain.gain.setValueAtTime(0, c + off);
      }
    }
    return () => {
      for (const o of oscs) o.stop();
      gain.disconnect();
    };
  }
}
