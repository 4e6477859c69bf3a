// Bounding-box geometry for the detection labelling view: boxes are normalised to 0..1 of the
// stored image (origin top-left, x right, y down), as the server stores them. Pure functions,
// unit-tested by tests/boxes.test.mjs.

export interface Box {
  label: string;
  x_min: number;
  y_min: number;
  x_max: number;
  y_max: number;
}

/** A box with the detector's confidence (example detections on the evaluation page). */
export interface ScoredBox extends Box {
  score: number;
}

/** The eight resize handles: corners and edge midpoints, by compass direction. */
export type Handle = "nw" | "n" | "ne" | "e" | "se" | "s" | "sw" | "w";
export const HANDLES: Handle[] = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];

/** The label the server gives a detection image without boxes (never a class). */
export const NO_BOXES = "_no_boxes_";

/** The most boxes one image may have (the server answers 124 above it). */
export const MAX_BOXES = 100;

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));

/** Where a handle sits on a box, normalised. */
export function handlePoint(b: Box, h: Handle): [number, number] {
  const x = h.includes("w") ? b.x_min : h.includes("e") ? b.x_max : (b.x_min + b.x_max) / 2;
  const y = h.includes("n") ? b.y_min : h.includes("s") ? b.y_max : (b.y_min + b.y_max) / 2;
  return [x, y];
}

/**
 * The box spanned by a drag from (x0, y0) to (x1, y1), clipped to the image; null when it is
 * smaller than `minW` × `minH` (a click, or a box under the server's one-pixel minimum).
 */
export function boxFromDrag(
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  label: string,
  minW: number,
  minH: number,
): Box | null {
  const b = {
    label,
    x_min: clamp01(Math.min(x0, x1)),
    y_min: clamp01(Math.min(y0, y1)),
    x_max: clamp01(Math.max(x0, x1)),
    y_max: clamp01(Math.max(y0, y1)),
  };
  return b.x_max - b.x_min >= minW && b.y_max - b.y_min >= minH ? b : null;
}

/** `b` moved by (dx, dy), kept whole inside the image (it stops at the edges, keeping its size). */
export function moveBox(b: Box, dx: number, dy: number): Box {
  const w = b.x_max - b.x_min;
  const h = b.y_max - b.y_min;
  const x = Math.min(1 - w, Math.max(0, b.x_min + dx));
  const y = Math.min(1 - h, Math.max(0, b.y_min + dy));
  return { ...b, x_min: x, y_min: y, x_max: x + w, y_max: y + h };
}

/**
 * `b` with the edges of `handle` dragged to (x, y), inside the image; an edge cannot cross its
 * opposite edge (it stops `minW`/`minH` short), so a resize never flips or collapses a box.
 */
export function resizeBox(b: Box, handle: Handle, x: number, y: number, minW: number, minH: number): Box {
  const out = { ...b };
  const cx = clamp01(x);
  const cy = clamp01(y);
  if (handle.includes("w")) out.x_min = Math.min(cx, b.x_max - minW);
  if (handle.includes("e")) out.x_max = Math.max(cx, b.x_min + minW);
  if (handle.includes("n")) out.y_min = Math.min(cy, b.y_max - minH);
  if (handle.includes("s")) out.y_max = Math.max(cy, b.y_min + minH);
  out.x_min = clamp01(out.x_min);
  out.y_min = clamp01(out.y_min);
  out.x_max = clamp01(out.x_max);
  out.y_max = clamp01(out.y_max);
  return out;
}

export type Hit = { index: number; handle: Handle | null };

/**
 * What a pointer at (x, y) grabs: a handle of the selected box (within `tolX`/`tolY`, checked
 * first so that handles on a box's edge win over a box drawn on top), else the topmost box that
 * contains the point (the last in the list), else null (empty image: start a new box).
 */
export function hitTest(
  boxes: Box[],
  selected: number | null,
  x: number,
  y: number,
  tolX: number,
  tolY: number,
): Hit | null {
  const sel = selected === null ? undefined : boxes[selected];
  if (sel && selected !== null) {
    for (const h of HANDLES) {
      const [hx, hy] = handlePoint(sel, h);
      if (Math.abs(hx - x) <= tolX && Math.abs(hy - y) <= tolY) return { index: selected, handle: h };
    }
  }
  for (let i = boxes.length - 1; i >= 0; i--) {
    const b = boxes[i] as Box;
    if (x >= b.x_min && x <= b.x_max && y >= b.y_min && y <= b.y_max) return { index: i, handle: null };
  }
  return null;
}

/** Boxes per label, in the order labels first appear. */
export function countLabels(boxes: Box[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of boxes) out[b.label] = (out[b.label] ?? 0) + 1;
  return out;
}

/** The sample label the server derives: the most frequent box label (ties: first), or NO_BOXES. */
export function dominantLabel(boxes: Box[]): string {
  let best = NO_BOXES;
  let bestN = 0;
  for (const [label, n] of Object.entries(countLabels(boxes))) {
    if (n > bestN) {
      best = label;
      bestN = n;
    }
  }
  return best;
}

/** Only the five wire fields (the server rejects nothing else, but keeps requests minimal). */
export function wireBox(b: Box): Box {
  return { label: b.label, x_min: b.x_min, y_min: b.y_min, x_max: b.x_max, y_max: b.y_max };
}

/** Intersection over union of two boxes (0 when they do not overlap). */
export function iou(a: Box, b: Box): number {
  const w = Math.min(a.x_max, b.x_max) - Math.max(a.x_min, b.x_min);
  const h = Math.min(a.y_max, b.y_max) - Math.max(a.y_min, b.y_min);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const union = (a.x_max - a.x_min) * (a.y_max - a.y_min) + (b.x_max - b.x_min) * (b.y_max - b.y_min) - inter;
  return union > 0 ? inter / union : 0;
}
