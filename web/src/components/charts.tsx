// Hand-written SVG/HTML charts: no chart library, nothing loaded from elsewhere.

import type { RefObject } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

import type { PerClass } from "../api";
import { pct } from "./common";

export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  /** [x, y] pairs; a null y is a gap (e.g. an epoch without validation). */
  points: [number, number | null][];
}

/** The widest drawing (viewBox units); a narrower chart draws at its own width (see useDrawWidth). */
const MAX_W = 480;
const MIN_W = 260;
const H = 240;

/**
 * The chart's width in CSS pixels, so that the viewBox is as wide as the drawing and the 11 px
 * axis labels stay 11 px on a phone (a fixed 480-unit viewBox shrank them to about 7 px at 390 px).
 */
function useDrawWidth<T extends Element>(): [RefObject<T>, number] {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(MAX_W);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const measure = () => {
      const w = Math.round(el.getBoundingClientRect().width);
      if (w > 0) setWidth(Math.max(MIN_W, Math.min(MAX_W, w)));
    };
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    measure();
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}
const M = { left: 46, right: 14, top: 14, bottom: 32 };

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return nice * mag;
}

export function LineChart({
  title,
  series,
  xMax,
  yFixed,
  yFormat = (v: number) => v.toFixed(2),
  testId,
}: {
  title: string;
  series: Series[];
  xMax: number;
  /** Fixed y range (e.g. [0, 1] for accuracy); otherwise 0..max of the data. */
  yFixed?: [number, number];
  yFormat?: (v: number) => string;
  testId?: string;
}) {
  const [svgRef, W] = useDrawWidth<SVGSVGElement>();
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v): v is number => v !== null && Number.isFinite(v));
  let [y0, y1] = yFixed ?? [0, values.length ? Math.max(...values) : 1];
  if (!yFixed) {
    y0 = Math.min(0, ...values);
    const step = niceStep(y1 - y0 || 1, 4);
    y1 = Math.ceil((y1 || 1) / step) * step;
  }
  const x0 = 1;
  const x1 = Math.max(2, xMax);
  const sx = (x: number) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const sy = (y: number) => H - M.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - M.top - M.bottom);
  const yStep = niceStep(y1 - y0 || 1, 4);
  const yTicks: number[] = [];
  for (let v = y0; v <= y1 + yStep / 1000; v += yStep) yTicks.push(Number(v.toFixed(10)));
  // About one x label per 45 px, so that they do not run into each other on a phone.
  const xStep = Math.max(1, Math.ceil((x1 - x0) / Math.max(4, Math.floor((W - M.left - M.right) / 45))));
  const xTicks: number[] = [];
  for (let v = x0; v <= x1; v += xStep) xTicks.push(v);

  const count = Math.max(0, ...series.map((s) => s.points.filter((p) => p[1] !== null).length));
  const latest = series
    .map((s) => {
      const last = [...s.points].reverse().find((p) => p[1] !== null);
      return last ? `${s.name} ${yFormat(last[1] as number)}` : null;
    })
    .filter(Boolean)
    .join(", ");
  const summary = count
    ? `${title}: ${count} epoch${count === 1 ? "" : "s"}; latest ${latest}`
    : `${title}: no epochs yet`;

  return (
    <figure class="chart" data-testid={testId} data-points={count}>
      <figcaption>{title}</figcaption>
      <svg ref={svgRef} viewBox={`0 0 ${W} ${H}`} role="img" aria-label={summary} preserveAspectRatio="xMidYMid meet">
        <g class="grid">
          {yTicks.map((v) => (
            <g key={`y${v}`}>
              <line x1={M.left} x2={W - M.right} y1={sy(v)} y2={sy(v)} />
              <text x={M.left - 6} y={sy(v) + 4} text-anchor="end">
                {yFormat(v)}
              </text>
            </g>
          ))}
          {xTicks.map((v) => (
            <text key={`x${v}`} x={sx(v)} y={H - M.bottom + 16} text-anchor="middle">
              {v}
            </text>
          ))}
          <text x={(M.left + W - M.right) / 2} y={H - 2} text-anchor="middle" class="axis-title">
            epoch
          </text>
        </g>
        {series.map((s) => {
          const segments: string[] = [];
          let current = "";
          for (const [x, y] of s.points) {
            if (y === null || !Number.isFinite(y)) {
              if (current) segments.push(current);
              current = "";
              continue;
            }
            current += `${current ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
          }
          if (current) segments.push(current);
          return (
            <g key={s.name} class="series" data-series={s.name}>
              {segments.map((d, i) => (
                <path
                  key={i}
                  d={d}
                  fill="none"
                  stroke={s.color}
                  stroke-width={2.2}
                  stroke-dasharray={s.dashed ? "6 4" : undefined}
                  stroke-linejoin="round"
                />
              ))}
              {s.points.map(([x, y]) =>
                y === null || !Number.isFinite(y) ? null : (
                  <circle key={x} cx={sx(x)} cy={sy(y)} r={3.2} fill={s.color}>
                    <title>{`${s.name}, epoch ${x}: ${yFormat(y)}`}</title>
                  </circle>
                ),
              )}
            </g>
          );
        })}
      </svg>
      <ul class="legend">
        {series.map((s) => (
          <li key={s.name}>
            <span
              class={`swatch${s.dashed ? " dashed" : ""}`}
              style={{ borderColor: s.color, background: s.dashed ? "transparent" : s.color }}
              aria-hidden="true"
            />
            {s.name}
          </li>
        ))}
      </ul>
    </figure>
  );
}

/** Samples per label as horizontal bars; labels far below the largest class stand out. */
export function ClassBars({
  counts,
  selected,
  onSelect,
}: {
  counts: Record<string, number>;
  selected: string;
  onSelect: (label: string) => void;
}) {
  const entries = Object.entries(counts);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  if (entries.length === 0) return <p class="muted">No labels yet: upload some images.</p>;
  return (
    <ul class="bars" aria-label="Samples per label" data-testid="class-bars">
      {entries.map(([label, n]) => {
        const low = n < max * 0.5;
        return (
          <li key={label} class={selected === label ? "selected" : ""}>
            <button
              type="button"
              class="bar-label"
              onClick={() => onSelect(selected === label ? "" : label)}
              aria-pressed={selected === label}
              title={`Show only “${label}”`}
            >
              {label}
            </button>
            <span class="bar-track" aria-hidden="true">
              <span class={`bar-fill${low ? " low" : ""}`} style={{ width: `${(n / max) * 100}%` }} />
            </span>
            <span class="bar-count">
              {n}
              {low ? <span class="visually-hidden"> (under half of the largest class)</span> : null}
            </span>
          </li>
        );
      })}
    </ul>
  );
}

/** The confusion matrix as a heat-mapped table: rows are true labels, columns predictions. */
export function ConfusionMatrix({ labels, matrix }: { labels: string[]; matrix: number[][] }) {
  return (
    <div class="scroll-x">
      <table class="heatmap" data-testid="confusion-matrix">
        <caption>
          Confusion matrix (rows: true label, columns: predicted label; shade = share of the row)
        </caption>
        <thead>
          <tr>
            <th scope="col" class="corner">
              true ↓ / predicted →
            </th>
            {labels.map((l) => (
              <th scope="col" key={l}>
                {l}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => {
            const total = row.reduce((a, b) => a + b, 0);
            return (
              <tr key={i}>
                <th scope="row">{labels[i]}</th>
                {row.map((n, j) => {
                  const share = total ? n / total : 0;
                  const hue = i === j ? "37, 99, 235" : "220, 38, 38";
                  const alpha = n === 0 ? 0 : 0.12 + share * 0.88;
                  return (
                    <td
                      key={j}
                      style={{
                        background: `rgba(${hue}, ${alpha.toFixed(3)})`,
                        color: alpha > 0.55 ? "#fff" : undefined,
                      }}
                      title={`true ${labels[i]}, predicted ${labels[j]}: ${n} (${pct(share, 0)} of the row)`}
                    >
                      {n}
                    </td>
                  );
                })}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function PerClassTable({ rows }: { rows: PerClass[] }) {
  const cell = (v: number) => (
    <td class="metric-cell">
      <span class="mini-bar" aria-hidden="true">
        <span style={{ width: `${Math.round(v * 100)}%` }} />
      </span>
      {pct(v)}
    </td>
  );
  return (
    <div class="scroll-x">
      <table class="data" data-testid="per-class">
        <caption>Per-class precision, recall and F1 on the validation split</caption>
        <thead>
          <tr>
            <th scope="col">Label</th>
            <th scope="col">Precision</th>
            <th scope="col">Recall</th>
            <th scope="col">F1</th>
            <th scope="col">Support</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.label}>
              <th scope="row">{r.label}</th>
              {cell(r.precision)}
              {cell(r.recall)}
              {cell(r.f1)}
              <td>{r.support}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
