// The box editor of a detection image: draw a box by dragging on the image, drag a box to move
// it, drag one of its eight handles to resize it, Delete removes the selected box. Boxes are
// normalised to the stored image; the SVG overlay uses the image's pixel coordinates so that it
// scales with the picture.

import { useEffect, useRef, useState } from "preact/hooks";

import {
  HANDLES,
  boxFromDrag,
  handlePoint,
  hitTest,
  moveBox,
  resizeBox,
  type Box,
  type Handle,
  type ScoredBox,
} from "../boxes";

/** A stable colour per label (golden-angle hues), so one class looks the same everywhere. */
export function labelColour(label: string, labels: string[]): string {
  let i = labels.indexOf(label);
  if (i < 0) {
    i = 0;
    for (const ch of label) i = (i * 31 + ch.charCodeAt(0)) % 997;
  }
  return `hsl(${Math.round((i * 137.508) % 360)} 85% 45%)`;
}

type Drag =
  | { mode: "draw"; x0: number; y0: number; x: number; y: number }
  | { mode: "move"; index: number; x0: number; y0: number; start: Box }
  | { mode: "resize"; index: number; handle: Handle; start: Box };

const HANDLE_PX = 9; // handle size on screen
const GRAB_PX = 8; // how close to a handle a press must be
const MIN_DRAW_PX = 4; // a shorter drag is a click, not a box

const CURSORS: Record<Handle, string> = {
  nw: "nwse-resize",
  se: "nwse-resize",
  ne: "nesw-resize",
  sw: "nesw-resize",
  n: "ns-resize",
  s: "ns-resize",
  e: "ew-resize",
  w: "ew-resize",
};

/**
 * The image with its boxes, editable. `onCommit` gets the new list after each finished
 * gesture (draw, move, resize); deleting and relabelling are done by the parent through
 * `selected` / `onSelect`.
 */
export function BoxEditor({
  src,
  width,
  height,
  boxes,
  labels,
  label,
  selected,
  onSelect,
  onCommit,
  disabled = false,
}: {
  src: string;
  width: number;
  height: number;
  boxes: Box[];
  labels: string[];
  label: string;
  selected: number | null;
  onSelect: (i: number | null) => void;
  onCommit: (boxes: Box[]) => void;
  disabled?: boolean;
}) {
  const svg = useRef<SVGSVGElement>(null);
  const [drag, setDrag] = useState<Drag | null>(null);
  const [draft, setDraft] = useState<Box[] | null>(null);
  const [shown, setShown] = useState(width); // the image's width on screen, for handle sizes
  const [hover, setHover] = useState("crosshair");

  useEffect(() => {
    const el = svg.current;
    if (!el) return;
    const update = () => setShown(el.getBoundingClientRect().width || width);
    update();
    const ro = new ResizeObserver(update);
    ro.observe(el);
    return () => ro.disconnect();
  }, [width]);

  // A box under one pixel of the stored image is refused by the server (122).
  const minW = 1 / width;
  const minH = 1 / height;
  const perPx = width / Math.max(1, shown); // image pixels per screen pixel

  const point = (e: PointerEvent): [number, number] => {
    const r = (svg.current as SVGSVGElement).getBoundingClientRect();
    return [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height];
  };
  const tol = (): [number, number] => {
    const r = (svg.current as SVGSVGElement).getBoundingClientRect();
    return [GRAB_PX / r.width, GRAB_PX / r.height];
  };

  const onDown = (e: PointerEvent) => {
    if (disabled || e.button !== 0) return;
    e.preventDefault();
    (svg.current as SVGSVGElement).setPointerCapture(e.pointerId);
    const [x, y] = point(e);
    const [tx, ty] = tol();
    const hit = hitTest(boxes, selected, x, y, tx, ty);
    if (hit === null) {
      onSelect(null);
      setDrag({ mode: "draw", x0: x, y0: y, x, y });
    } else {
      onSelect(hit.index);
      const start = boxes[hit.index] as Box;
      setDrag(
        hit.handle
          ? { mode: "resize", index: hit.index, handle: hit.handle, start }
          : { mode: "move", index: hit.index, x0: x, y0: y, start },
      );
    }
  };

  const edited = (d: Drag, x: number, y: number): Box[] | null => {
    if (d.mode === "draw") return null;
    const next =
      d.mode === "move" ? moveBox(d.start, x - d.x0, y - d.y0) : resizeBox(d.start, d.handle, x, y, minW, minH);
    return boxes.map((b, i) => (i === d.index ? next : b));
  };

  const onMove = (e: PointerEvent) => {
    const [x, y] = point(e);
    if (!drag) {
      const [tx, ty] = tol();
      const hit = hitTest(boxes, selected, x, y, tx, ty);
      setHover(hit === null ? "crosshair" : hit.handle ? CURSORS[hit.handle] : "move");
      return;
    }
    if (drag.mode === "draw") setDrag({ ...drag, x, y });
    else setDraft(edited(drag, x, y));
  };

  const onUp = (e: PointerEvent) => {
    if (!drag) return;
    const [x, y] = point(e);
    const d = drag;
    setDrag(null);
    setDraft(null);
    if (d.mode === "draw") {
      const r = (svg.current as SVGSVGElement).getBoundingClientRect();
      const far = Math.hypot((x - d.x0) * r.width, (y - d.y0) * r.height) >= MIN_DRAW_PX;
      const box = far ? boxFromDrag(d.x0, d.y0, x, y, label, minW, minH) : null;
      if (box) {
        onCommit([...boxes, box]);
        onSelect(boxes.length);
      }
      return;
    }
    const next = edited(d, x, y);
    const changed = next?.[d.index];
    const before = d.start;
    if (next && changed && (changed.x_min !== before.x_min || changed.y_min !== before.y_min ||
        changed.x_max !== before.x_max || changed.y_max !== before.y_max)) {
      onCommit(next);
    }
  };

  const shownBoxes = draft ?? boxes;
  const drawing =
    drag?.mode === "draw" ? boxFromDrag(drag.x0, drag.y0, drag.x, drag.y, label, 0, 0) : null;
  const hs = HANDLE_PX * perPx;
  const stroke = 2 * perPx;

  return (
    // Tall images are narrowed so that the whole image fits 75 % of the window's height.
    <div class="box-editor" style={{ aspectRatio: `${width} / ${height}`, maxWidth: `calc(75vh * ${width / height})` }}>
      <img src={src} alt="The image being labelled" draggable={false} />
      <svg
        ref={svg}
        data-testid="box-canvas"
        viewBox={`0 0 ${width} ${height}`}
        preserveAspectRatio="none"
        style={{ cursor: drag ? (drag.mode === "draw" ? "crosshair" : drag.mode === "move" ? "move" : CURSORS[drag.handle]) : hover }}
        onPointerDown={onDown}
        onPointerMove={onMove}
        onPointerUp={onUp}
        onPointerCancel={() => {
          setDrag(null);
          setDraft(null);
        }}
        role="img"
        aria-label={`${boxes.length} box${boxes.length === 1 ? "" : "es"}; drag on the image to draw one`}
      >
        {shownBoxes.map((b, i) => {
          const colour = labelColour(b.label, labels);
          const on = i === selected;
          return (
            <g key={i} data-testid="box" data-label={b.label} class={on ? "box selected" : "box"}>
              <rect
                x={b.x_min * width}
                y={b.y_min * height}
                width={(b.x_max - b.x_min) * width}
                height={(b.y_max - b.y_min) * height}
                fill={on ? colour : "transparent"}
                fill-opacity={on ? 0.15 : 0}
                stroke={colour}
                stroke-width={on ? stroke * 1.5 : stroke}
              />
              <text x={b.x_min * width + stroke} y={b.y_min * height + 12 * perPx} font-size={12 * perPx} fill={colour} class="box-text">
                {i + 1} {b.label}
              </text>
              {on
                ? HANDLES.map((h) => {
                    const [hx, hy] = handlePoint(b, h);
                    return (
                      <rect
                        key={h}
                        data-handle={h}
                        class="handle"
                        x={hx * width - hs / 2}
                        y={hy * height - hs / 2}
                        width={hs}
                        height={hs}
                        fill="#fff"
                        stroke={colour}
                        stroke-width={stroke * 0.75}
                      />
                    );
                  })
                : null}
            </g>
          );
        })}
        {drawing ? (
          <rect
            x={drawing.x_min * width}
            y={drawing.y_min * height}
            width={(drawing.x_max - drawing.x_min) * width}
            height={(drawing.y_max - drawing.y_min) * height}
            fill="none"
            stroke={labelColour(label, labels)}
            stroke-width={stroke}
            stroke-dasharray={`${4 * perPx} ${3 * perPx}`}
          />
        ) : null}
      </svg>
    </div>
  );
}

/** Boxes drawn over an image, read-only (thumbnails, ground truth and detections side by side). */
export function BoxOverlay({
  width,
  height,
  boxes,
  labels,
  dashed = false,
  testId = "overlay",
}: {
  width: number;
  height: number;
  boxes: (Box | ScoredBox)[];
  labels: string[];
  dashed?: boolean;
  testId?: string;
}) {
  // Fixed viewBox: stroke widths are in units of a 100-unit wide image.
  const w = 100;
  const h = (100 * height) / Math.max(1, width);
  return (
    <svg class="box-overlay" viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" data-testid={testId} aria-hidden="true">
      {boxes.map((b, i) => (
        <rect
          key={i}
          x={b.x_min * w}
          y={b.y_min * h}
          width={(b.x_max - b.x_min) * w}
          height={(b.y_max - b.y_min) * h}
          fill="none"
          stroke={labelColour(b.label, labels)}
          stroke-width={1.5}
          stroke-dasharray={dashed ? "3 2" : undefined}
          vector-effect="non-scaling-stroke"
        />
      ))}
    </svg>
  );
}
