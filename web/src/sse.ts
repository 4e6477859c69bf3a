// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, so the
// dashboard reads the stream itself, parses it per the HTML spec and resumes after a drop with
// Last-Event-ID, skipping any event it already has (so no point is lost or drawn twice).

import type { JobEvent } from "./api";
import { authHeaders, signOut } from "./auth";

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

/** Incremental text/event-stream parser: feed it decoded text, get complete messages. */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | null = null;
  /** The last `retry:` value in milliseconds, if the server sent one. */
  retry: number | null = null;

  feed(text: string): SseMessage[] {
    this.buffer += text;
    const out: SseMessage[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more text.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const msg = { id: this.id, event: this.event || "message", data: this.data.join("\n") };
      this.data = [];
      this.event = "";
      return msg;
    }
    if (line.startsWith(":")) return null; // comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
    return null;
  }
}

export type StreamStatus = "connecting" | "live" | "reconnecting" | "ended" | "error";

export interface WatchHandlers {
  onEvent: (event: JobEvent) => void;
  onStatus: (status: StreamStatus, detail?: string) => void;
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
/** The server sends a keep-alive comment every 15 s; silence for this long means a dead link. */
const SILENCE_MS = 40_000;
const MAX_BACKOFF_MS = 10_000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/**
 * Follow a job's events from `afterSeq` until its final state event, reconnecting after any
 * network failure. Returns a function that stops watching.
 */
export function watchJob(jobId: string, afterSeq: number, handlers: WatchHandlers): () => void {
  const stop = new AbortController();
  let lastSeq = afterSeq;
  let finished = false;
  let failures = 0;

  const once = async (): Promise<"ended" | "retry"> => {
    const attempt = new AbortController();
    const abortAttempt = () => attempt.abort();
    stop.signal.addEventListener("abort", abortAttempt);
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const feedDog = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => attempt.abort(), SILENCE_MS);
    };
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream", ...authHeaders() };
      if (lastSeq > 0) headers["Last-Event-ID"] = String(lastSeq);
      feedDog();
      const resp = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events`, {
        headers,
        signal: attempt.signal,
        cache: "no-store",
      });
      if (resp.status === 204) return "ended"; // everything was delivered already
      if (resp.status === 401) {
        signOut("Your token was refused; sign in again.");
        return "ended";
      }
      if (resp.status === 404) {
        handlers.onStatus("error", "job not found");
        return "ended";
      }
      if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
      handlers.onStatus("live");
      failures = 0;
      const parser = new SseParser();
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        feedDog();
        for (const msg of parser.feed(value)) {
          if (!msg.data) continue;
          const event = JSON.parse(msg.data) as JobEvent;
          if (event.seq <= lastSeq) continue; // already have it (a resumed stream)
          lastSeq = event.seq;
          handlers.onEvent(event);
          if (event.kind === "state" && TERMINAL.has(String(event.data.state))) finished = true;
        }
      }
      return finished ? "ended" : "retry";
    } catch (err) {
      if (stop.signal.aborted) return "ended";
      handlers.onStatus("reconnecting", err instanceof Error ? err.message : String(err));
      return "retry";
    } finally {
      clearTimeout(watchdog);
      stop.signal.removeEventListener("abort", abortAttempt);
    }
  };

  void (async () => {
    handlers.onStatus("connecting");
    while (!stop.signal.aborted) {
      const outcome = await once();
      if (outcome === "ended" || finished) {
        if (!stop.signal.aborted) handlers.onStatus("ended");
        return;
      }
      failures += 1;
      handlers.onStatus("reconnecting");
      await sleep(Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(failures - 1, 5)), stop.signal);
    }
  })();

  return () => stop.abort();
}
