// Unit tests of the dashboard's Server-Sent Events client (src/sse.ts), with Node's test runner:
// the parser on awkward chunking, and the watcher resuming after a dropped connection.
// Run: node --test tests/ (from web/); tests/e2e/test_dashboard.py runs it in `make test`.

import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

// Bundle the TypeScript module on the fly (esbuild comes with Vite) and import it.
const bundle = await build({
  entryPoints: [fileURLToPath(new URL("../src/sse.ts", import.meta.url))],
  bundle: true,
  format: "esm",
  platform: "neutral",
  write: false,
  logLevel: "silent",
});
const { SseParser, watchJob } = await import(
  `data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString("base64")}`
);

test("the parser handles any chunking, CRLF, comments and multi-line data", () => {
  const text =
    "retry: 3000\r\n\r\n: keep-alive\r\n\r\nid: 1\r\nevent: state\r\ndata: {\"a\":1}\r\n\r\n" +
    "id: 2\nevent: log\ndata: line one\ndata: line two\n\nid: 3\rdata:no space\r\r: bye\n";
  const expected = [
    { id: "1", event: "state", data: '{"a":1}' },
    { id: "2", event: "log", data: "line one\nline two" },
    { id: "3", event: "message", data: "no space" },
  ];
  for (const size of [1, 2, 3, 7, text.length]) {
    const parser = new SseParser();
    const out = [];
    for (let i = 0; i < text.length; i += size) out.push(...parser.feed(text.slice(i, i + size)));
    assert.deepEqual(out, expected, `chunks of ${size}`);
    assert.equal(parser.retry, 3000);
  }
});

const sse = (seq, kind, data) =>
  `id: ${seq}\nevent: ${kind}\ndata: ${JSON.stringify({ job_id: "j", seq, kind, data, created_at: "" })}\n\n`;

/** A body that sends `chunks`, then either ends or fails like a dropped connection. */
const body = (chunks, fail) =>
  new ReadableStream({
    async pull(controller) {
      const next = chunks.shift();
      if (next !== undefined) {
        controller.enqueue(new TextEncoder().encode(next));
        await new Promise((r) => setTimeout(r, 5));
      } else if (fail) controller.error(new TypeError("network error"));
      else controller.close();
    },
  });

test("the watcher resumes after a drop with Last-Event-ID and drops repeated events", async () => {
  const requests = [];
  const answers = [
    // First connection: two epochs, then the connection breaks.
    () => new Response(body([sse(1, "state", { state: "running" }), sse(2, "epoch", { epoch: 1 }), sse(3, "epoch", { epoch: 2 })], true), { status: 200 }),
    // The network is down for a moment.
    () => Promise.reject(new TypeError("Failed to fetch")),
    // Back: the server repeats event 3 (as a careless proxy might) and finishes the job.
    () => new Response(body([sse(3, "epoch", { epoch: 2 }), sse(4, "epoch", { epoch: 3 }), sse(5, "state", { state: "succeeded" })], false), { status: 200 }),
  ];
  globalThis.fetch = (url, init) => {
    requests.push({ url, lastEventId: new Headers(init.headers).get("Last-Event-ID") });
    return answers.shift()();
  };
  const seen = [];
  const statuses = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the watcher never ended")), 10_000);
    watchJob("j", 0, {
      onEvent: (e) => seen.push(e.seq),
      onStatus: (s) => {
        statuses.push(s);
        if (s === "ended") {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  assert.deepEqual(
    requests.map((r) => r.lastEventId),
    [null, "3", "3"],
  );
  assert.ok(requests.every((r) => r.url === "/v1/jobs/j/events"));
  assert.ok(statuses.includes("reconnecting"));
});

test("a finished job answered with 204 ends the watch at once", async () => {
  globalThis.fetch = () => Promise.resolve(new Response(null, { status: 204 }));
  const statuses = [];
  await new Promise((resolve) => {
    watchJob("j", 7, {
      onEvent: () => assert.fail("no events expected"),
      onStatus: (s) => {
        statuses.push(s);
        if (s === "ended") resolve();
      },
    });
  });
  assert.deepEqual(statuses, ["connecting", "ended"]);
});
