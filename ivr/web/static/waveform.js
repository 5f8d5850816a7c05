// A recording's waveform, computed in the page from the WAV as it streams in
// (no server-side work, bounded memory): for each of `columns` columns, the
// lowest and highest sample of each channel. Then drawn on a canvas, one lane
// per channel, with the pauses shaded and a play head.

const COLOURS = ["#0b57a4", "#1d6b33"]; // caller (left), agent (right): 7.2:1 and 6.6:1 on white

function ascii(bytes, at) {
  return String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
}

/** Parse a RIFF/WAVE header; null until enough bytes are there. */
export function parseWavHeader(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12) return null;
  if (ascii(bytes, 0) !== "RIFF" || ascii(bytes, 8) !== "WAVE") throw new Error("not a WAV file");
  let at = 12;
  let fmt = null;
  while (at + 8 <= bytes.length) {
    const id = ascii(bytes, at);
    const size = view.getUint32(at + 4, true);
    if (id === "fmt ") {
      if (at + 8 + 16 > bytes.length) return null;
      fmt = {
        format: view.getUint16(at + 8, true),
        channels: view.getUint16(at + 10, true),
        rate: view.getUint32(at + 12, true),
        bits: view.getUint16(at + 22, true),
      };
    } else if (id === "data") {
      if (!fmt) throw new Error("WAV data before its format");
      return { ...fmt, dataOffset: at + 8, dataBytes: size };
    }
    at += 8 + size + (size % 2);
  }
  return null;
}

/**
 * Stream `url` (with `headers`) and reduce it to peaks. Returns
 * {rate, channels, duration, columns, min: [Float32Array...], max: [...]}.
 */
export async function computePeaks(url, headers, columns, signal) {
  const resp = await fetch(url, { headers, cache: "no-store", signal });
  if (!resp.ok) throw new Error(`the audio could not be read (HTTP ${resp.status})`);
  const reader = resp.body.getReader();
  const total = Number(resp.headers.get("Content-Length")) || 0;
  let head = new Uint8Array(0);
  let info = null;
  let frames = 0;
  let frame = 0;
  let carry = new Uint8Array(0);
  let min;
  let max;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    let chunk = value;
    if (!info) {
      const joined = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      info = parseWavHeader(joined);
      if (!info) {
        head = joined;
        continue;
      }
      if (info.format !== 1 || info.bits !== 16) throw new Error("only 16-bit PCM WAV is drawn");
      let dataBytes = info.dataBytes;
      if (!dataBytes || dataBytes === 0xffffffff) dataBytes = Math.max(0, total - info.dataOffset);
      frames = Math.floor(dataBytes / (2 * info.channels));
      min = Array.from({ length: info.channels }, () => new Float32Array(columns).fill(1));
      max = Array.from({ length: info.channels }, () => new Float32Array(columns).fill(-1));
      chunk = joined.subarray(info.dataOffset);
    }
    if (carry.length) {
      const joined = new Uint8Array(carry.length + chunk.length);
      joined.set(carry);
      joined.set(chunk, carry.length);
      chunk = joined;
    }
    const step = 2 * info.channels;
    const usable = chunk.length - (chunk.length % step);
    const view = new DataView(chunk.buffer, chunk.byteOffset, usable);
    for (let at = 0; at < usable && frame < frames; at += step, frame++) {
      const col = Math.min(columns - 1, Math.floor((frame * columns) / frames));
      for (let c = 0; c < info.channels; c++) {
        const v = view.getInt16(at + 2 * c, true) / 32768;
        if (v < min[c][col]) min[c][col] = v;
        if (v > max[c][col]) max[c][col] = v;
      }
    }
    carry = chunk.slice(usable);
  }
  if (!info) throw new Error("the audio is not a WAV file");
  for (let c = 0; c < info.channels; c++) {
    for (let i = 0; i < columns; i++) if (min[c][i] > max[c][i]) min[c][i] = max[c][i] = 0;
  }
  return { rate: info.rate, channels: info.channels, duration: frames / info.rate, columns, min, max, frames: frame };
}

/** Draw `peaks` on `canvas`, shading `pauses` ([{start_s, end_s}]) and marking `position` (s). */
export function draw(canvas, peaks, pauses = [], position = null) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const g = canvas.getContext("2d");
  g.fillStyle = "#ffffff";
  g.fillRect(0, 0, width, height);
  if (!peaks) return;
  const duration = peaks.duration || 1;
  for (const p of pauses) {
    const x0 = (p.start_s / duration) * width;
    const x1 = ((p.end_s ?? duration) / duration) * width;
    g.fillStyle = "#fff4e0";
    g.fillRect(x0, 0, Math.max(1, x1 - x0), height);
    g.fillStyle = "#7a4b00";
    g.fillRect(x0, 0, Math.max(1, ratio), height);
    g.fillRect(Math.max(x0, x1 - ratio), 0, Math.max(1, ratio), height);
  }
  const lanes = Math.min(2, peaks.channels);
  const lane = height / lanes;
  for (let c = 0; c < lanes; c++) {
    const mid = lane * c + lane / 2;
    g.fillStyle = "#6b7280";
    g.fillRect(0, Math.round(mid), width, Math.max(1, Math.round(ratio / 2)));
    g.fillStyle = COLOURS[c];
    for (let x = 0; x < width; x++) {
      const i = Math.min(peaks.columns - 1, Math.floor((x / width) * peaks.columns));
      const top = mid - peaks.max[c][i] * (lane / 2 - 2);
      const bottom = mid - peaks.min[c][i] * (lane / 2 - 2);
      g.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
    if (c === 1) {
      g.fillStyle = "#6b7280";
      g.fillRect(0, Math.round(lane), width, Math.max(1, Math.round(ratio)));
    }
  }
  if (position !== null && Number.isFinite(position)) {
    const x = (position / duration) * width;
    g.fillStyle = "#a4161a";
    g.fillRect(Math.round(x) - ratio, 0, 2 * ratio, height);
  }
}
