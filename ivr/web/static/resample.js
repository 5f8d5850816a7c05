// Sample-rate conversion for the softphone's audio worklets: the browser's
// microphone rate (usually 48000 or 44100 Hz) down to the call's rate (8000
// or 16000 Hz), and the call's rate back up for the speaker.
//
// The same textbook design as media/resample.py: a rational resampler
// (up / down after reducing the ratio) computed as a polyphase FIR whose
// prototype low-pass is a Kaiser-windowed sinc designed with Kaiser's
// formulas (J. F. Kaiser, 1974) for STOPBAND_DB of attenuation: flat up to
// PASSBAND_FRACTION of the lower rate's Nyquist frequency and at least
// STOPBAND_DB down from that Nyquist frequency on. Decimating without such a
// low-pass would fold everything above 4 kHz into the telephone band.
//
// The stream is causal: output n is the filter centred on input time
// n * down / up, and is produced once the filter's last input has arrived,
// so the output lags by `delaySeconds`.

export const PASSBAND_FRACTION = 0.85;
export const STOPBAND_DB = 80;

function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

// The zeroth-order modified Bessel function of the first kind, by its series.
function besselI0(x) {
  let sum = 1;
  let term = 1;
  const q = (x / 2) * (x / 2);
  for (let k = 1; k < 50; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

function kaiserBeta(db) {
  if (db > 50) return 0.1102 * (db - 8.7);
  if (db >= 21) return 0.5842 * (db - 21) ** 0.4 + 0.07886 * (db - 21);
  return 0;
}

/** A streaming resampler from `fromRate` to `toRate` (positive integers). */
export class Resampler {
  constructor(fromRate, toRate, { stopbandDb = STOPBAND_DB, passband = PASSBAND_FRACTION } = {}) {
    if (!(Number.isInteger(fromRate) && Number.isInteger(toRate) && fromRate > 0 && toRate > 0)) {
      throw new RangeError(`rates must be positive integers, not ${fromRate} and ${toRate}`);
    }
    const g = gcd(fromRate, toRate);
    this.fromRate = fromRate;
    this.toRate = toRate;
    this.up = toRate / g;
    this.down = fromRate / g;
    const nyquist = Math.min(fromRate, toRate) / 2;
    const pass = passband * nyquist;
    const cutoff = (pass + nyquist) / 2 / fromRate; // cycles per input sample
    const transition = (nyquist - pass) / fromRate;
    // Kaiser's length estimate, in input samples; half of it on each side.
    const length = (stopbandDb - 7.95) / (2.285 * 2 * Math.PI * transition);
    const half = Math.max(2, Math.ceil(length / 2));
    const beta = kaiserBeta(stopbandDb);
    const i0beta = besselI0(beta);
    this.half = half;
    this.taps = 2 * half;
    // phases[p][j] weighs input (base - half + 1 + j) for an output whose input
    // time is base + p / up.
    this.phases = [];
    for (let p = 0; p < this.up; p++) {
      const c = new Float32Array(this.taps);
      let sum = 0;
      for (let j = 0; j < this.taps; j++) {
        const d = j - half + 1 - p / this.up; // distance from the centre, in input samples
        const x = 2 * cutoff * d;
        const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
        const r = d / half;
        const w = Math.abs(r) >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - r * r)) / i0beta;
        c[j] = sinc * w;
        sum += c[j];
      }
      for (let j = 0; j < this.taps; j++) c[j] /= sum; // unity gain at DC for every phase
      this.phases.push(c);
    }
    this.delaySeconds = half / fromRate;
    this.reset();
  }

  reset() {
    this.buffer = new Float32Array(Math.max(4096, this.taps * 4));
    // The input before the stream began is silence: `half - 1` zeros stand
    // before sample 0, so the first output needs no earlier input.
    this.start = -(this.half - 1); // absolute index of buffer[0]
    this.length = this.half - 1; // valid samples in buffer
    this.produced = 0; // outputs emitted so far
  }

  /** Feed input samples; return the output samples now complete (a new Float32Array). */
  process(input) {
    this._append(input);
    const end = this.start + this.length; // one past the last absolute input index
    // Output n needs inputs up to floor(n * down / up) + half.
    const out = [];
    for (;;) {
      const t = this.produced * this.down;
      const base = Math.floor(t / this.up);
      if (base + this.half >= end) break;
      const coeffs = this.phases[t - base * this.up];
      let acc = 0;
      let i = base - this.half + 1 - this.start;
      for (let j = 0; j < this.taps; j++, i++) acc += coeffs[j] * this.buffer[i];
      out.push(acc);
      this.produced++;
    }
    this._discard();
    return Float32Array.from(out);
  }

  _append(input) {
    if (this.length + input.length > this.buffer.length) {
      const bigger = new Float32Array(Math.max(this.buffer.length * 2, this.length + input.length));
      bigger.set(this.buffer.subarray(0, this.length));
      this.buffer = bigger;
    }
    this.buffer.set(input, this.length);
    this.length += input.length;
  }

  // Drop inputs that no future output will read.
  _discard() {
    const nextBase = Math.floor((this.produced * this.down) / this.up);
    const keepFrom = nextBase - this.half + 1;
    const drop = keepFrom - this.start;
    if (drop > 0 && drop > this.buffer.length / 4) {
      this.buffer.copyWithin(0, drop, this.length);
      this.length -= drop;
      this.start += drop;
    }
  }
}

/** Float samples in [-1, 1] to 16-bit PCM, clipped. */
export function toInt16(floats) {
  const out = new Int16Array(floats.length);
  for (let i = 0; i < floats.length; i++) {
    const v = Math.max(-1, Math.min(1, floats[i]));
    out[i] = v < 0 ? Math.round(v * 32768) : Math.round(v * 32767);
  }
  return out;
}

/** 16-bit PCM to float samples in [-1, 1). */
export function toFloat32(ints) {
  const out = new Float32Array(ints.length);
  for (let i = 0; i < ints.length; i++) out[i] = ints[i] / 32768;
  return out;
}
