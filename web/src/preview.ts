// Pure decoders for sample previews (no DOM): PCM/float WAV → min/max columns for a waveform
// thumbnail, and sensor recordings (CSV or JSON) → one series per channel for a line plot.
// Kept DOM-free so Node's test runner checks them (tests/preview.test.mjs).

export interface Wav {
  sampleRate: number;
  channels: number;
  /** Mono mix of all channels, −1..1. */
  samples: Float32Array;
}

function tag(view: DataView, at: number): string {
  return String.fromCharCode(view.getUint8(at), view.getUint8(at + 1), view.getUint8(at + 2), view.getUint8(at + 3));
}

/**
 * Parse a RIFF/WAVE file: PCM 8/16/24/32-bit integer or 32-bit float (plain or WAVE_FORMAT_EXTENSIBLE),
 * any channel count, mixed down to mono. Throws on anything else (the preview then shows "?").
 */
export function parseWav(buffer: ArrayBuffer): Wav {
  const view = new DataView(buffer);
  if (view.byteLength < 12 || tag(view, 0) !== "RIFF" || tag(view, 8) !== "WAVE") throw new Error("not a WAV file");
  let format = 0;
  let channels = 0;
  let sampleRate = 0;
  let bits = 0;
  let dataAt = -1;
  let dataLen = 0;
  for (let at = 12; at + 8 <= view.byteLength; ) {
    const id = tag(view, at);
    const len = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === "fmt " && body + 16 <= view.byteLength) {
      format = view.getUint16(body, true);
      channels = view.getUint16(body + 2, true);
      sampleRate = view.getUint32(body + 4, true);
      bits = view.getUint16(body + 14, true);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
      if (format === 0xfffe && len >= 26 && body + 26 <= view.byteLength) format = view.getUint16(body + 24, true);
    } else if (id === "data") {
      dataAt = body;
      dataLen = Math.min(len, view.byteLength - body);
      break;
    }
    at = body + len + (len % 2); // chunks are padded to an even length
  }
  if (dataAt < 0 || channels < 1 || sampleRate < 1) throw new Error("WAV without fmt or data chunk");
  const bytes = bits / 8;
  const read: ((at: number) => number) | null =
    format === 3 && bits === 32
      ? (at) => view.getFloat32(at, true)
      : format !== 1
        ? null
        : bits === 8
          ? (at) => (view.getUint8(at) - 128) / 128
          : bits === 16
            ? (at) => view.getInt16(at, true) / 32768
            : bits === 24
              ? (at) => ((view.getUint8(at) | (view.getUint8(at + 1) << 8) | (view.getInt8(at + 2) << 16)) / 8388608)
              : bits === 32
                ? (at) => view.getInt32(at, true) / 2147483648
                : null;
  if (!read) throw new Error(`unsupported WAV encoding (format ${format}, ${bits} bits)`);
  const frames = Math.floor(dataLen / (bytes * channels));
  const samples = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += read(dataAt + (i * channels + c) * bytes);
    samples[i] = sum / channels;
  }
  return { sampleRate, channels, samples };
}

/** Min and max of the samples under each of `columns` pixel columns (empty columns are 0, 0). */
export function waveformColumns(samples: Float32Array, columns: number): { min: number[]; max: number[] } {
  const min: number[] = [];
  const max: number[] = [];
  for (let c = 0; c < columns; c++) {
    const from = Math.floor((c * samples.length) / columns);
    const to = Math.max(from + 1, Math.floor(((c + 1) * samples.length) / columns));
    let lo = 0;
    let hi = 0;
    for (let i = from; i < to && i < samples.length; i++) {
      const v = samples[i] as number;
      if (i === from || v < lo) lo = v;
      if (i === from || v > hi) hi = v;
    }
    min.push(lo);
    max.push(hi);
  }
  return { min, max };
}

export interface SensorSeries {
  channels: string[];
  /** values[channel][step] */
  values: number[][];
}

// The timestamp columns the server accepts (tasks/sensor.py TIMESTAMP_COLUMNS): not channels.
const TIME_COLUMNS = new Set(["timestamp", "timestamp_s", "time", "timestamp_ms"]);

/**
 * A sensor recording as one series per channel. CSV: a header row of channel names (a timestamp
 * column is skipped), one row per step. JSON: `{"rate_hz", "channels", "values"}` with `values` as
 * one list per reading (one number per channel), as the server reads it.
 */
export function parseSensor(text: string, mediaType: string): SensorSeries {
  const trimmed = text.trim();
  if (mediaType.includes("json") || trimmed.startsWith("{")) {
    const doc = JSON.parse(trimmed) as { channels?: unknown; values?: unknown };
    const names = Array.isArray(doc.channels) ? doc.channels.map(String) : [];
    const rows = Array.isArray(doc.values) ? (doc.values as unknown[]) : [];
    if (!names.length || !rows.every(Array.isArray)) throw new Error("JSON sample without channels and values");
    const grid = rows as number[][];
    const values = names.map((_, c) => grid.map((r) => Number(r[c])));
    return { channels: names, values };
  }
  const lines = trimmed.split(/\r?\n/).filter((l) => l.trim() !== "");
  const header = (lines[0] ?? "").split(",").map((h) => h.trim());
  const keep = header.map((h, i) => (TIME_COLUMNS.has(h.toLowerCase()) ? -1 : i)).filter((i) => i >= 0);
  if (!keep.length) throw new Error("CSV sample without channel columns");
  const values: number[][] = keep.map(() => []);
  for (const line of lines.slice(1)) {
    const cells = line.split(",");
    keep.forEach((col, k) => (values[k] as number[]).push(Number(cells[col])));
  }
  return { channels: keep.map((i) => header[i] as string), values };
}

/** SVG polyline `points` for each series, all on one shared y scale, in a `width`×`height` box. */
export function polylinePoints(series: SensorSeries, width: number, height: number, pad = 2): string[] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series.values)
    for (const v of s)
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
  if (!Number.isFinite(lo)) lo = hi = 0;
  const span = hi - lo || 1;
  return series.values.map((s) => {
    // At most ~2 points per pixel: thumbnails of long recordings stay light.
    const step = Math.max(1, Math.floor(s.length / (width * 2)));
    const pts: string[] = [];
    for (let i = 0; i < s.length; i += step) {
      const v = s[i] as number;
      if (!Number.isFinite(v)) continue;
      const x = s.length > 1 ? (i / (s.length - 1)) * width : width / 2;
      const y = pad + (1 - (v - lo) / span) * (height - 2 * pad);
      pts.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    }
    return pts.join(" ");
  });
}
