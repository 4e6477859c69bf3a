// Browser test of object detection in the dashboard, driven by tests/e2e/test_dashboard_detection.py
// (which starts the server and writes the scene images).
//
// Creates a detection project with the New project form, uploads images through the file input,
// draws a box with mouse events, moves and resizes it, draws and deletes another with the Delete
// key, picks labels with number keys, steps through images with n/p, checks every change through
// the REST API, then uploads an annotated set through the API, trains from the Train page and
// reads per-class AP and example detections on the evaluation page.
//
// playwright-core drives Debian's Chromium (headless); nothing is downloaded. Environment:
//   MOBILETRAIN_URL   http://127.0.0.1:PORT of the running server
//   MOBILETRAIN_TOKEN the admin token
//   FORM_IMAGES       JSON list of image paths to upload through the file input
//   ANNOTATED         JSON file: [{path, boxes}] uploaded through the API before training
//   EPOCHS            epochs to train (default 3)
//   ARTIFACTS_DIR     where screenshots go
//   CHROMIUM          the browser binary (default /usr/bin/chromium)

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";

import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const BASE = env("MOBILETRAIN_URL");
const TOKEN = env("MOBILETRAIN_TOKEN");
const FORM_IMAGES = JSON.parse(env("FORM_IMAGES"));
const ANNOTATED = JSON.parse(readFileSync(env("ANNOTATED"), "utf8"));
const EPOCHS = Number(env("EPOCHS", "3"));
const ARTIFACTS = env("ARTIFACTS_DIR");
const PROJECT = "shapes-ui";
mkdirSync(ARTIFACTS, { recursive: true });

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

const apiGet = async (path) => {
  const resp = await fetch(`${BASE}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(resp.status, 200, `GET ${path}: ${resp.status} ${await resp.clone().text()}`);
  return resp.json();
};

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
await context.addInitScript((token) => localStorage.setItem("mobiletrain.token", token), TOKEN);
const page = await context.newPage();
page.setDefaultTimeout(15_000);
const pageErrors = [];
page.on("pageerror", (err) => pageErrors.push(String(err)));

const shot = (name, options = {}) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), ...options });

let passed = 0;
const step = async (name, fn) => {
  log(`▶ ${name}`);
  try {
    await fn();
    passed += 1;
  } catch (err) {
    await page.screenshot({ path: join(ARTIFACTS, "failure.png"), fullPage: true }).catch(() => {});
    console.error(`✗ ${name}: ${err?.stack ?? err}`);
    if (pageErrors.length) console.error(`errors in the page:\n${pageErrors.join("\n")}`);
    await browser.close();
    process.exit(1);
  }
};

/** The canvas's screen rectangle, and a point in it from normalised image coordinates. */
const canvas = () => page.getByTestId("box-canvas");
const at = async (x, y) => {
  const r = await canvas().boundingBox();
  return [r.x + x * r.width, r.y + y * r.height];
};
/** A mouse drag in image coordinates, in small steps as a hand would. */
const drag = async (from, to) => {
  const [x0, y0] = await at(...from);
  const [x1, y1] = await at(...to);
  await page.mouse.move(x0, y0);
  await page.mouse.down();
  await page.mouse.move(x1, y1, { steps: 8 });
  await page.mouse.up();
};
/** The sample as the server has it once `pred` holds (each gesture saves on its own). */
const stored = async (pred, what) => {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const s = await sampleNow();
    if (pred(s)) return s;
    if (Date.now() > deadline) throw new Error(`${what}: the server has ${JSON.stringify(s.boxes)}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
};
const near = (actual, expected, what, tol = 0.02) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} is not within ${tol} of ${expected}`);

let sampleId = "";
const sampleNow = () => apiGet(`/v1/projects/${PROJECT}/samples/${sampleId}`);

await step("New project offers object detection and makes a detection project", async () => {
  await page.goto(`${BASE}/`);
  await page.getByLabel("Name").fill(PROJECT);
  await page.getByLabel("Task").selectOption("object-detection");
  assert.equal(await page.getByLabel("Input width (px)").inputValue(), "192", "the detector's default size");
  await page.getByLabel("Input width (px)").fill("96");
  await page.getByLabel("Input height (px)").fill("96");
  await page.getByLabel("Labels").fill("circle, square, triangle");
  assert.equal(await page.getByLabel("Max detections per image").inputValue(), "10");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(`**/projects/${PROJECT}/dataset`);
  assert.match(await page.locator(".project-head").textContent(), /object-detection · 96×96 rgb · zero-one · up to 10 boxes/);
  const project = await apiGet(`/v1/projects/${PROJECT}`);
  assert.equal(project.task, "object-detection");
  assert.deepEqual(project.labels, ["circle", "square", "triangle"]);
});

await step("images go in through the file input without labels and are flagged 'no boxes'", async () => {
  assert.equal(await page.locator("#upload-label").count(), 0, "no label field for detection uploads");
  await page.setInputFiles("#file-input", FORM_IMAGES);
  await page.getByText(new RegExp(`^${FORM_IMAGES.length} of ${FORM_IMAGES.length} files · ${FORM_IMAGES.length} added`)).waitFor();
  const grid = page.getByRole("list", { name: "Samples", exact: true });
  await grid.getByTestId("no-boxes").nth(FORM_IMAGES.length - 1).waitFor();
  assert.equal(await grid.getByTestId("no-boxes").count(), FORM_IMAGES.length);
  await page.getByTestId("images-without-boxes").filter({ hasText: `${FORM_IMAGES.length} images without boxes` }).waitFor();
  await shot("detection-dataset-empty");
});

await step("draw a box with the mouse; the API has it, normalised, with the picked label", async () => {
  await page.getByRole("list", { name: "Samples", exact: true }).getByRole("button").first().click();
  await page.waitForURL(/\/annotate\/[^/]+$/);
  sampleId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());
  await canvas().waitFor();
  await page.locator(".box-editor img").waitFor();
  await page.keyboard.press("2");
  assert.equal(await page.locator("#box-label").inputValue(), "square");
  await drag([0.2, 0.3], [0.6, 0.7]);
  await page.getByTestId("save-status").filter({ hasText: "Saved 1 box." }).waitFor();
  const s = await stored((x) => x.boxes.length === 1, "the drawn box");
  const [b] = s.boxes;
  assert.equal(b.label, "square");
  near(b.x_min, 0.2, "x_min");
  near(b.y_min, 0.3, "y_min");
  near(b.x_max, 0.6, "x_max");
  near(b.y_max, 0.7, "y_max");
  assert.equal(s.label, "square", "the server labels the image by its boxes");
  await shot("detection-annotate");
});

await step("move the box by dragging it, resize it by its corner handle", async () => {
  await drag([0.4, 0.5], [0.5, 0.55]);
  let [b] = (await stored((x) => Math.abs(x.boxes[0].x_min - 0.3) < 0.03, "the moved box")).boxes;
  near(b.x_min, 0.3, "moved x_min");
  near(b.y_min, 0.35, "moved y_min");
  near(b.x_max - b.x_min, 0.4, "width kept");
  // The selected box shows eight handles; the south-east one sits at (x_max, y_max).
  assert.equal(await canvas().locator("[data-handle]").count(), 8);
  await drag([b.x_max, b.y_max], [0.9, 0.95]);
  [b] = (await stored((x) => Math.abs(x.boxes[0].x_max - 0.9) < 0.03, "the resized box")).boxes;
  near(b.x_max, 0.9, "resized x_max");
  near(b.y_max, 0.95, "resized y_max");
  near(b.x_min, 0.3, "x_min stays");
  near(b.y_min, 0.35, "y_min stays");
});

await step("a second box with another label; Delete removes the selected one", async () => {
  // Escape first: a number key relabels the selected box (the one just resized).
  await page.keyboard.press("Escape");
  assert.equal(await canvas().locator("[data-handle]").count(), 0);
  await page.keyboard.press("1");
  await drag([0.05, 0.05], [0.2, 0.2]);
  let s = await stored((x) => x.boxes.length === 2, "the second box");
  assert.deepEqual(s.boxes.map((b) => b.label), ["square", "circle"]);
  assert.equal(await canvas().getByTestId("box").count(), 2);
  await page.keyboard.press("Delete");
  s = await stored((x) => x.boxes.length === 1, "after Delete");
  assert.deepEqual(s.boxes.map((b) => b.label), ["square"]);
  // Relabel the remaining box with a number key: select it in the list, press 3.
  await page.getByRole("button", { name: "Box 1", exact: true }).click();
  await page.keyboard.press("3");
  s = await stored((x) => x.boxes[0].label === "triangle", "relabelled by key 3");
  assert.equal(s.label, "triangle");
});

await step("n and p (and the arrow keys) step through the images; the boxes stay", async () => {
  const first = await page.getByTestId("annotate-sample").textContent();
  await page.keyboard.press("n");
  await page.waitForFunction((t) => document.querySelector("[data-testid=annotate-sample]")?.textContent !== t, first);
  assert.notEqual(decodeURIComponent(new URL(page.url()).pathname.split("/").pop()), sampleId);
  await page.getByTestId("no-boxes-here").waitFor();
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("p");
  await page.keyboard.press("ArrowLeft");
  await page.getByTestId("annotate-sample").filter({ hasText: first }).waitFor();
  await canvas().getByTestId("box").first().waitFor();
  assert.equal(await canvas().getByTestId("box").count(), 1);
  assert.equal(await canvas().getByTestId("box").first().getAttribute("data-label"), "triangle");
});

await step("the dataset page counts boxes per label and flags the images without boxes", async () => {
  await page.getByRole("link", { name: "Back to the dataset" }).click();
  await page.waitForURL(`**/projects/${PROJECT}/dataset`);
  const bars = page.getByTestId("box-bars").locator("li");
  await bars.first().waitFor();
  const text = await bars.allTextContents();
  assert.ok(text.some((t) => t.includes("triangle") && t.endsWith("1")), `box counts: ${text}`);
  await page.getByTestId("images-without-boxes").filter({ hasText: `${FORM_IMAGES.length - 1} images without boxes` }).waitFor();
  const grid = page.getByRole("list", { name: "Samples", exact: true });
  await grid.getByTestId("box-count").waitFor();
  await grid.getByTestId("no-boxes").nth(FORM_IMAGES.length - 2).waitFor();
  assert.equal(await grid.getByTestId("no-boxes").count(), FORM_IMAGES.length - 1);
  assert.equal(await grid.getByTestId("box-count").count(), 1);
  assert.equal(await grid.getByTestId("thumb-boxes").locator("rect").count(), 1, "the box drawn on its thumbnail");
  await shot("detection-dataset");
});

await step("an annotated set goes in through the API (multipart, one boxes array per file)", async () => {
  for (let i = 0; i < ANNOTATED.length; i += 20) {
    const form = new FormData();
    const batch = ANNOTATED.slice(i, i + 20);
    for (const item of batch) form.append("files", new Blob([readFileSync(item.path)], { type: "image/jpeg" }), basename(item.path));
    for (const item of batch) form.append("boxes", JSON.stringify(item.boxes));
    const resp = await fetch(`${BASE}/v1/projects/${PROJECT}/samples`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}` },
      body: form,
    });
    const summary = await resp.json();
    assert.equal(resp.status, 200, JSON.stringify(summary));
    assert.equal(summary.accepted, batch.length, JSON.stringify(summary.results.filter((r) => r.status !== "accepted")));
  }
  const counts = await apiGet(`/v1/projects/${PROJECT}/class-counts`);
  assert.equal(counts.total, FORM_IMAGES.length + ANNOTATED.length);
});

let version = null;
await step("train from the Train page; the job succeeds", async () => {
  await page.goto(`${BASE}/projects/${PROJECT}/train`);
  await page.getByLabel("Epochs").fill(String(EPOCHS));
  await page.getByLabel("Batch size").fill("16");
  await page.getByText(/early stopping and exports/).click();
  for (const fmt of ["float16", "dynamic-int8", "int8"]) {
    const box = page.getByRole("checkbox", { name: fmt, exact: true });
    if (await box.isChecked()) await box.uncheck();
  }
  await page.getByRole("button", { name: "Start training" }).click();
  await page.waitForURL(/\/jobs\/[0-9a-f-]+$/);
  const jobId = new URL(page.url()).pathname.split("/").pop();
  await page.getByTestId("job-state").filter({ hasText: /succeeded|failed|cancelled/ }).waitFor({ timeout: 480_000 });
  const job = await apiGet(`/v1/jobs/${jobId}`);
  assert.equal(job.state, "succeeded", job.error);
  version = job.model_version;
  assert.ok(Number.isInteger(version), `model version ${version}`);
  await shot("detection-job");
});

await step("the evaluation shows mAP, AP per class and example detections beside the ground truth", async () => {
  await page.goto(`${BASE}/projects/${PROJECT}/models/${version}`);
  await page.getByTestId("per-class-ap").waitFor();
  const rows = await page.getByTestId("per-class-ap").locator("tbody th").allTextContents();
  assert.deepEqual(rows, ["circle", "square", "triangle"]);
  assert.match(await page.getByTestId("map-50").textContent(), /^\d+\.\d%$/);
  assert.match(await page.getByTestId("map-50-95").textContent(), /^\d+\.\d%$/);
  const metrics = await apiGet(`/v1/projects/${PROJECT}/models/${version}/metrics`);
  const shown = Number((await page.getByTestId("map-50").textContent()).replace("%", "")) / 100;
  near(shown, metrics.detection.map50, "mAP@0.5 on the page", 0.0005);
  assert.match(await page.getByTestId("map-50-float32").textContent(), /\d+\.\d%/, "the float32 file's mAP in LiteRT");
  const examples = page.getByTestId("detection-examples").locator("li");
  await examples.first().waitFor();
  assert.equal(await examples.count(), metrics.detection_examples.length);
  const first = metrics.detection_examples[0];
  assert.equal(await examples.first().getByTestId("truth-boxes").locator("rect").count(), first.ground_truth.length);
  assert.equal(await examples.first().getByTestId("found-boxes").locator("rect").count(), first.detections.length);
  await examples.first().locator("img").first().waitFor();
  await shot("detection-evaluation", { fullPage: true });
});

await step("Try it says the server does not run detectors, and where detections are shown", async () => {
  await page.getByRole("link", { name: "Try it", exact: true }).click();
  await page.getByTestId("try-detection").waitFor();
  assert.equal(await page.locator("#try-file").count(), 0, "no upload that the server would refuse");
});

await step("phone width: the labelling view fits 390 px", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${BASE}/projects/${PROJECT}/annotate/${encodeURIComponent(sampleId)}`);
  await canvas().waitFor();
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width + 1, `annotate page is ${scroll}px wide in ${width}px`);
  await shot("phone-detection-annotate", { fullPage: true });
});

await browser.close();
assert.deepEqual(pageErrors, [], "uncaught errors in the page");
log(`dashboard detection: all ${passed} steps passed`);
