// Browser test of the dataset page for audio and sensor projects, driven by
// tests/e2e/test_dashboard_media.py (which creates the projects and uploads the samples).
//
// playwright-core drives Debian's Chromium (headless); nothing is downloaded. Environment:
//   MOBILETRAIN_URL   http://127.0.0.1:PORT of the running server
//   MOBILETRAIN_TOKEN the admin token
//   FORM_CSV          a two-channel (gx, gy) CSV to upload into a project made with the form
//   ARTIFACTS_DIR     where screenshots go
//   CHROMIUM          the browser binary (default /usr/bin/chromium)

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const BASE = env("MOBILETRAIN_URL");
const TOKEN = env("MOBILETRAIN_TOKEN");
const FORM_CSV = env("FORM_CSV");
const ARTIFACTS = env("ARTIFACTS_DIR");
mkdirSync(ARTIFACTS, { recursive: true });

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
// Signed in from the start: the sign-in flow is the main dashboard test's business.
await context.addInitScript((token) => localStorage.setItem("mobiletrain.token", token), TOKEN);
const page = await context.newPage();
page.setDefaultTimeout(15_000);
const pageErrors = [];
page.on("pageerror", (err) => pageErrors.push(String(err)));

const shot = (name, options = {}) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), ...options });

const assertNoSideways = async (what) => {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width + 1, `${what}: page is ${scroll}px wide in a ${width}px viewport`);
};

let passed = 0;
const step = async (name, fn) => {
  log(`▶ ${name}`);
  try {
    await fn();
    passed += 1;
  } catch (err) {
    await page.screenshot({ path: join(ARTIFACTS, "failure.png"), fullPage: true }).catch(() => {});
    console.error(`✗ ${name}: ${err?.stack ?? err}`);
    await browser.close();
    process.exit(1);
  }
};

await step("audio project: header, per-label counts, a waveform and a playable <audio> per WAV", async () => {
  await page.goto(`${BASE}/projects/sounds-ui/dataset`);
  await page.getByRole("heading", { name: "sounds-ui", level: 1 }).waitFor();
  const head = await page.locator(".project-head").textContent();
  assert.match(head, /audio-classification · 16 kHz mono · 1000 ms clips \(16000 samples\)/);
  assert.doesNotMatch(head, /×/, "no pixel size for an audio project");
  await page.getByTestId("total-samples").filter({ hasText: /^3$/ }).waitFor();
  const bars = await page.getByTestId("class-bars").locator("li").allTextContents();
  assert.equal(bars.length, 2);
  assert.ok(bars.some((b) => b.includes("high") && b.includes("2")), `counts: ${bars}`);
  assert.ok(bars.some((b) => b.includes("low") && b.includes("1")), `counts: ${bars}`);
  await page.getByRole("heading", { name: "Add samples" }).waitFor();
  assert.equal(await page.locator("#file-input").getAttribute("accept"), ".wav,audio/wav");
  assert.equal(await page.getByText("Capture from the webcam").count(), 0);

  const thumbs = page.getByRole("list", { name: "Samples" });
  await thumbs.getByTestId("waveform").nth(2).waitFor();
  assert.equal(await thumbs.getByTestId("waveform").count(), 3);
  // A real waveform: one column segment per pixel, and a tone (not silence) spans most of the height.
  const wave = await thumbs.getByTestId("waveform").first().evaluate((svg) => {
    const box = svg.querySelector("path").getBBox();
    return { segments: (svg.querySelector("path").getAttribute("d").match(/M/g) ?? []).length, h: box.height, H: svg.height.baseVal.value };
  });
  assert.equal(wave.segments, 88);
  assert.ok(wave.h > wave.H * 0.5, `waveform height ${wave.h} of ${wave.H}`);
  assert.match(await thumbs.getByTestId("waveform").first().getAttribute("aria-label"), /1\.00 s at 16000 Hz/);

  const players = thumbs.getByTestId("sample-audio");
  await players.nth(2).waitFor({ state: "attached" });
  assert.equal(await players.count(), 3);
  // The blob URL plays: the browser decodes its metadata (1 s) and playback starts.
  const played = await players.first().evaluate(async (audio) => {
    if (audio.readyState < 1) await new Promise((ok, fail) => {
      audio.addEventListener("loadedmetadata", ok, { once: true });
      audio.addEventListener("error", () => fail(new Error(`audio error ${audio.error?.code}`)), { once: true });
    });
    await audio.play();
    return { src: audio.src, duration: audio.duration };
  });
  assert.match(played.src, /^blob:/);
  assert.ok(Math.abs(played.duration - 1) < 0.01, `duration ${played.duration}`);
  await shot("audio-dataset");

  // The sample dialog: a large waveform and its own player.
  await thumbs.getByRole("button", { name: /Sample labelled low/ }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByTestId("waveform").waitFor();
  await dialog.getByTestId("sample-audio").waitFor({ state: "attached" });
  assert.doesNotMatch(await dialog.locator(".facts").textContent(), / px/);
  await dialog.getByRole("button", { name: "Close" }).click();
});

await step("sensor project: header, counts and one polyline per channel", async () => {
  await page.goto(`${BASE}/projects/motion-ui/dataset`);
  await page.getByRole("heading", { name: "motion-ui", level: 1 }).waitFor();
  assert.match(await page.locator(".project-head").textContent(), /ax, ay, az at 50 Hz · window 100, stride 50/);
  await page.getByTestId("total-samples").filter({ hasText: /^2$/ }).waitFor();
  assert.equal(await page.getByTestId("class-bars").locator("li").count(), 2);
  const plots = page.getByRole("list", { name: "Samples" }).getByTestId("sensor-plot");
  await plots.nth(1).waitFor();
  for (let i = 0; i < 2; i++) {
    const lines = plots.nth(i).locator("polyline");
    assert.equal(await lines.count(), 3);
    assert.deepEqual(await lines.evaluateAll((ls) => ls.map((l) => l.dataset.channel)), ["ax", "ay", "az"]);
    // Every reading is drawn (120 ≤ 2 points per pixel of 88).
    assert.equal((await lines.first().getAttribute("points")).split(" ").length, 120);
  }
  assert.equal(await page.getByTestId("sample-audio").count(), 0);
  await shot("sensor-dataset");
});

await step("train, models, evaluation and try pages of a non-image project load without errors", async () => {
  for (const p of ["sounds-ui", "motion-ui"]) {
    for (const sub of ["train", "models", "models/current", "try"]) {
      await page.goto(`${BASE}/projects/${p}/${sub}`);
      await page.getByRole("heading", { name: p, level: 1 }).waitFor();
      await page.waitForLoadState("networkidle");
    }
    // No image-only controls: the model choice (MobileNets) and the webcam.
    assert.equal(await page.getByText("Or take a webcam frame").count(), 0);
    await page.goto(`${BASE}/projects/${p}/train`);
    await page.getByLabel("Epochs").waitFor();
    assert.equal(await page.locator("#architecture").count(), 0);
    assert.equal(await page.locator("#augment_flip").count(), 0);
  }
  assert.deepEqual(pageErrors, []);
});

await step("the New project form makes a sensor project; a CSV goes in through the file input", async () => {
  await page.goto(`${BASE}/`);
  await page.getByLabel("Name").fill("gyro-form");
  await page.getByLabel("Task").selectOption("sensor-classification");
  assert.equal(await page.getByLabel("Input width (px)").count(), 0, "image settings hidden");
  await page.getByLabel("Channels").fill("gx, gy");
  await page.getByLabel("Sampling rate (Hz)").fill("50");
  await page.getByLabel("Window (readings)").fill("60");
  await page.getByLabel("Stride (readings)").fill("30");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL("**/projects/gyro-form/dataset");
  assert.match(await page.locator(".project-head").textContent(), /gx, gy at 50 Hz · window 60, stride 30 \(windows\)/);
  await page.getByLabel("Label for loose files").fill("wave");
  await page.setInputFiles("#file-input", FORM_CSV);
  await page.getByText(/^1 of 1 files · 1 added/).waitFor();
  const plot = page.getByRole("list", { name: "Samples" }).getByTestId("sensor-plot").first();
  await plot.waitFor();
  assert.equal(await plot.locator("polyline").count(), 2);
});

await step("phone width: the audio and sensor pages fit 390 px", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [name, url] of [
    ["phone-audio-dataset", `${BASE}/projects/sounds-ui/dataset`],
    ["phone-sensor-dataset", `${BASE}/projects/motion-ui/dataset`],
    ["phone-new-project", `${BASE}/`],
  ]) {
    await page.goto(url);
    await page.locator("main h1").first().waitFor();
    await page.waitForLoadState("networkidle");
    await assertNoSideways(name);
    await shot(name, { fullPage: true });
  }
});

await browser.close();
assert.deepEqual(pageErrors, [], "uncaught errors in the page");
log(`dashboard media: all ${passed} steps passed`);
