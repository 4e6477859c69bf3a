import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";

import { describe, request } from "../api";

export interface Loaded<T> {
  data: T | undefined;
  error: string;
  loading: boolean;
  reload: () => void;
}

/** Run `load` when `deps` change; stale answers are ignored. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      (value) => {
        if (!live) return;
        setData(value);
        setError("");
        setLoading(false);
      },
      (err: unknown) => {
        if (!live) return;
        setError(describe(err));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

export function ErrorBox({ message }: { message: string }) {
  if (!message) return null;
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

export function Spinner({ label = "Loading…" }: { label?: string }) {
  return (
    <p class="muted" role="status">
      {label}
    </p>
  );
}

export function Card({
  title,
  children,
  actions,
  id,
}: {
  title: string;
  children: ComponentChildren;
  actions?: ComponentChildren;
  id?: string;
}) {
  const headingId = `${id ?? title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}-heading`;
  return (
    <section class="card" aria-labelledby={headingId} id={id}>
      <header class="card-head">
        <h2 id={headingId}>{title}</h2>
        {actions ? <div class="card-actions">{actions}</div> : null}
      </header>
      {children}
    </section>
  );
}

export function ProgressBar({
  value,
  max,
  label,
  text,
}: {
  value: number;
  max: number;
  label: string;
  text?: string;
}) {
  const pct = max > 0 ? Math.max(0, Math.min(100, (value / max) * 100)) : 0;
  return (
    <div class="progress-wrap">
      <div
        class="progress"
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(pct)}
        aria-valuetext={text ?? `${Math.round(pct)}%`}
      >
        <div class="progress-fill" style={{ width: `${pct}%` }} />
      </div>
      {text ? <div class="progress-text">{text}</div> : null}
    </div>
  );
}

// Thumbnails need the Authorization header, so they are fetched and shown as object URLs.
// Sample bytes never change (their URL names them), so the URLs are cached for the session.
const imageCache = new Map<string, Promise<string>>();
const CACHE_LIMIT = 600;

/** An object URL for the image at `url` (fetched with the token, cached for the session). */
export function loadImage(url: string): Promise<string> {
  let hit = imageCache.get(url);
  if (!hit) {
    hit = request(url)
      .then((r) => r.blob())
      .then((b) => URL.createObjectURL(b));
    hit.catch(() => imageCache.delete(url));
    imageCache.set(url, hit);
    if (imageCache.size > CACHE_LIMIT) {
      const oldest = imageCache.keys().next().value;
      if (oldest !== undefined) {
        const old = imageCache.get(oldest);
        imageCache.delete(oldest);
        void old?.then((u) => URL.revokeObjectURL(u), () => undefined);
      }
    }
  }
  return hit;
}

export function AuthImage({ src, alt, size = 96 }: { src: string; alt: string; size?: number }) {
  const [url, setUrl] = useState<string>("");
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    setFailed(false);
    loadImage(src).then(
      (u) => live && setUrl(u),
      () => live && setFailed(true),
    );
    return () => {
      live = false;
    };
  }, [src]);
  if (failed) {
    return (
      <span class="thumb thumb-missing" style={{ width: size, height: size }} role="img" aria-label={alt}>
        ?
      </span>
    );
  }
  return url ? (
    <img class="thumb" src={url} alt={alt} width={size} height={size} loading="lazy" />
  ) : (
    <span class="thumb thumb-loading" style={{ width: size, height: size }} aria-hidden="true" />
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  if (h > 0) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

export function pct(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : `${(v * 100).toFixed(digits)}%`;
}

export function num(v: unknown, digits = 4): string {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "–";
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** Focus an element once it mounts (for headings of new views, so screen readers follow). */
export function useFocusOnMount<T extends HTMLElement>() {
  const ref = useRef<T>(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  return ref;
}
