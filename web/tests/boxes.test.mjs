// Unit tests of the box geometry of the labelling view (src/boxes.ts), with Node's test runner.
// Run: node --test tests/boxes.test.mjs (from web/); tests/e2e/test_dashboard_detection.py runs it.

import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const bundle = await build({
  entryPoints: [fileURLToPath(new URL("../src/boxes.ts", import.meta.url))],
  bundle: true,
  format: "esm",
  platform: "neutral",
  write: false,
  logLevel: "silent",
});
const { boxFromDrag, moveBox, resizeBox, hitTest, dominantLabel, countLabels, wireBox, iou, NO_BOXES } = await import(
  `data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString("base64")}`
);

const box = (label, x_min, y_min, x_max, y_max) => ({ label, x_min, y_min, x_max, y_max });
const close = (a, b) => {
  for (const k of ["x_min", "y_min", "x_max", "y_max"]) assert.ok(Math.abs(a[k] - b[k]) < 1e-9, `${k}: ${a[k]} vs ${b[k]}`);
  assert.equal(a.label, b.label);
};

test("a drag in any direction makes the same box, clipped to the image; a click makes none", () => {
  close(boxFromDrag(0.6, 0.7, 0.2, 0.1, "cat", 0.01, 0.01), box("cat", 0.2, 0.1, 0.6, 0.7));
  close(boxFromDrag(-0.2, 0.5, 0.4, 1.3, "cat", 0.01, 0.01), box("cat", 0, 0.5, 0.4, 1));
  assert.equal(boxFromDrag(0.5, 0.5, 0.5005, 0.9, "cat", 0.01, 0.01), null);
});

test("moving stops at the edges and keeps the size", () => {
  const b = box("dog", 0.1, 0.2, 0.4, 0.6);
  close(moveBox(b, 0.2, 0.1), box("dog", 0.3, 0.3, 0.6, 0.7));
  close(moveBox(b, -0.5, 0.9), box("dog", 0, 0.6, 0.3, 1));
});

test("resizing moves only the handle's edges and never flips or collapses the box", () => {
  const b = box("dog", 0.2, 0.2, 0.6, 0.6);
  close(resizeBox(b, "se", 0.8, 0.9, 0.01, 0.01), box("dog", 0.2, 0.2, 0.8, 0.9));
  close(resizeBox(b, "n", 0.9, 0.1, 0.01, 0.01), box("dog", 0.2, 0.1, 0.6, 0.6));
  close(resizeBox(b, "w", 0.9, 0.3, 0.01, 0.01), box("dog", 0.59, 0.2, 0.6, 0.6));
  close(resizeBox(b, "nw", -1, -1, 0.01, 0.01), box("dog", 0, 0, 0.6, 0.6));
});

test("a press grabs a handle of the selected box first, else the topmost box, else nothing", () => {
  const boxes = [box("a", 0.1, 0.1, 0.5, 0.5), box("b", 0.4, 0.4, 0.9, 0.9)];
  assert.deepEqual(hitTest(boxes, null, 0.45, 0.45, 0.02, 0.02), { index: 1, handle: null });
  assert.deepEqual(hitTest(boxes, 0, 0.5, 0.5, 0.02, 0.02), { index: 0, handle: "se" });
  assert.deepEqual(hitTest(boxes, 0, 0.3, 0.105, 0.02, 0.02), { index: 0, handle: "n" });
  assert.equal(hitTest(boxes, 0, 0.95, 0.05, 0.02, 0.02), null);
});

test("the sample label the server derives: most boxes, ties to the first; none: _no_boxes_", () => {
  const boxes = [box("cat", 0, 0, 1, 1), box("dog", 0, 0, 1, 1), box("dog", 0, 0, 1, 1), box("cat", 0, 0, 1, 1)];
  assert.deepEqual(countLabels(boxes), { cat: 2, dog: 2 });
  assert.equal(dominantLabel(boxes), "cat");
  assert.equal(dominantLabel([...boxes, box("dog", 0, 0, 1, 1)]), "dog");
  assert.equal(dominantLabel([]), NO_BOXES);
});

test("the wire form has exactly the five fields; IoU", () => {
  assert.deepEqual(Object.keys(wireBox({ ...box("a", 0, 0, 0.5, 0.5), score: 0.9 })), ["label", "x_min", "y_min", "x_max", "y_max"]);
  assert.equal(iou(box("a", 0, 0, 0.5, 0.5), box("a", 0, 0, 0.5, 0.5)), 1);
  assert.ok(Math.abs(iou(box("a", 0, 0, 0.5, 0.5), box("a", 0.25, 0, 0.75, 0.5)) - 1 / 3) < 1e-12);
  assert.equal(iou(box("a", 0, 0, 0.2, 0.2), box("a", 0.5, 0.5, 1, 1)), 0);
});
