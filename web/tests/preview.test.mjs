// Unit tests of the sample-preview decoders (src/preview.ts), with Node's test runner: WAV
// encodings the server accepts, the waveform's min/max columns, sensor CSV/JSON parsing and the
// plot's polylines. Run: node --test tests/ (from web/); tests/e2e/test_dashboard_media.py runs it.

import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const bundle = await build({
  entryPoints: [fileURLToPath(new URL("../src/preview.ts", import.meta.url))],
  bundle: true,
  format: "esm",
  platform: "neutral",
  write: false,
  logLevel: "silent",
});
const { parseWav, waveformColumns, parseSensor, polylinePoints } = await import(
  `data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString("base64")}`
);

/** A WAV file: `frames` is [frame][channel] of already-encoded integers or floats. */
function wav({ format = 1, bits = 16, rate = 8000, frames, extensible = false, extraChunk = false }) {
  const channels = frames[0].length;
  const bytes = bits / 8;
  const data = Buffer.alloc(frames.length * channels * bytes);
  frames.flat().forEach((v, i) => {
    const at = i * bytes;
    if (format === 3) data.writeFloatLE(v, at);
    else if (bits === 8) data.writeUInt8(v, at);
    else if (bits === 16) data.writeInt16LE(v, at);
    else if (bits === 24) data.writeIntLE(v, at, 3);
    else data.writeInt32LE(v, at);
  });
  const fmtLen = extensible ? 40 : 16;
  const fmt = Buffer.alloc(8 + fmtLen);
  fmt.write("fmt ", 0, "latin1");
  fmt.writeUInt32LE(fmtLen, 4);
  fmt.writeUInt16LE(extensible ? 0xfffe : format, 8);
  fmt.writeUInt16LE(channels, 10);
  fmt.writeUInt32LE(rate, 12);
  fmt.writeUInt32LE(rate * channels * bytes, 16);
  fmt.writeUInt16LE(channels * bytes, 20);
  fmt.writeUInt16LE(bits, 22);
  if (extensible) {
    fmt.writeUInt16LE(22, 24);
    fmt.writeUInt16LE(format, 32); // sub-format GUID starts with the format code
  }
  // An odd-length LIST chunk before the data: the parser must skip it with its pad byte.
  const extra = extraChunk ? Buffer.concat([Buffer.from("LIST"), Buffer.from([3, 0, 0, 0, 1, 2, 3, 0])]) : Buffer.alloc(0);
  const head = Buffer.alloc(8);
  head.write("data", 0, "latin1");
  head.writeUInt32LE(data.length, 4);
  const body = Buffer.concat([Buffer.from("WAVE"), fmt, extra, head, data]);
  const riff = Buffer.alloc(8);
  riff.write("RIFF", 0, "latin1");
  riff.writeUInt32LE(body.length, 4);
  const all = Buffer.concat([riff, body]);
  return all.buffer.slice(all.byteOffset, all.byteOffset + all.length);
}

const close = (a, b, eps = 1e-4) => assert.ok(Math.abs(a - b) < eps, `${a} ≠ ${b}`);

test("16-bit mono PCM: rate, channels and scaled samples", () => {
  const w = parseWav(wav({ frames: [[0], [16384], [-32768], [32767]] }));
  assert.equal(w.sampleRate, 8000);
  assert.equal(w.channels, 1);
  assert.deepEqual([...w.samples].map((v) => Math.round(v * 1000) / 1000), [0, 0.5, -1, 1]);
});

test("stereo is mixed to mono; extra chunks with a pad byte are skipped", () => {
  const w = parseWav(wav({ frames: [[16384, -16384], [32767, 32767]], extraChunk: true }));
  assert.equal(w.channels, 2);
  assert.equal(w.samples.length, 2);
  close(w.samples[0], 0);
  close(w.samples[1], 32767 / 32768);
});

test("8-bit unsigned, 24-bit, 32-bit integer and 32-bit float (plain and extensible)", () => {
  close(parseWav(wav({ bits: 8, frames: [[255], [0], [128]] })).samples[1], -1);
  close(parseWav(wav({ bits: 24, frames: [[-4194304]] })).samples[0], -0.5);
  close(parseWav(wav({ bits: 32, frames: [[1073741824]] })).samples[0], 0.5);
  close(parseWav(wav({ format: 3, bits: 32, frames: [[0.25]] })).samples[0], 0.25);
  close(parseWav(wav({ format: 3, bits: 32, frames: [[-0.75]], extensible: true })).samples[0], -0.75);
});

test("not a WAV, or an encoding the server does not take: an error", () => {
  assert.throws(() => parseWav(new TextEncoder().encode("RIFF....AVI ").buffer), /not a WAV/);
  assert.throws(() => parseWav(wav({ format: 2, bits: 16, frames: [[1]] })), /unsupported/);
});

test("waveform columns are the min and max under each pixel", () => {
  const s = Float32Array.from([0, 1, -1, 0.5, 0.2, 0.3, -0.4, 0]);
  const { min, max } = waveformColumns(s, 4);
  assert.deepEqual(min.map((v) => Math.round(v * 10) / 10), [0, -1, 0.2, -0.4]);
  assert.deepEqual(max.map((v) => Math.round(v * 10) / 10), [1, 0.5, 0.3, 0]);
  // More columns than samples: every column still gets a value, none reads past the end.
  assert.equal(waveformColumns(Float32Array.from([0.5]), 3).max.length, 3);
});

test("sensor CSV: the timestamp column is not a channel", () => {
  const s = parseSensor("timestamp,ax,ay\n0,1,2\n0.02,3,4\n", "text/csv");
  assert.deepEqual(s.channels, ["ax", "ay"]);
  assert.deepEqual(s.values, [[1, 3], [2, 4]]);
  assert.deepEqual(parseSensor("x,y,z\r\n1,2,3\r\n", "text/csv").values, [[1], [2], [3]]);
});

test("sensor JSON: one list per reading, as the server reads it", () => {
  const s = parseSensor(JSON.stringify({ rate_hz: 50, channels: ["gx", "gy"], values: [[1, 2], [3, 4], [5, 6]] }), "application/json");
  assert.deepEqual(s.channels, ["gx", "gy"]);
  assert.deepEqual(s.values, [[1, 3, 5], [2, 4, 6]]);
  assert.throws(() => parseSensor('{"rate_hz": 50}', "application/json"));
});

test("polylines: one per channel, shared scale, x across the width", () => {
  const lines = polylinePoints({ channels: ["a", "b"], values: [[0, 10], [5, 5]] }, 100, 20, 0);
  assert.equal(lines.length, 2);
  assert.equal(lines[0], "0.0,20.0 100.0,0.0");
  assert.equal(lines[1], "0.0,10.0 100.0,10.0");
  // Long recordings are thinned to about two points per pixel.
  const long = polylinePoints({ channels: ["a"], values: [Array.from({ length: 10_000 }, (_, i) => i)] }, 50, 20);
  assert.ok(long[0].split(" ").length <= 101);
});
