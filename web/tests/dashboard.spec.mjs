// Browser test of the dashboard against a real server, driven by tests/e2e/test_dashboard.py.
//
// playwright-core drives Debian's Chromium (headless); nothing is downloaded. Environment:
//   MOBILETRAIN_URL   http://127.0.0.1:PORT of the running server
//   MOBILETRAIN_TOKEN the admin token
//   MOBILETRAIN_AUTH  "1" when the server checks tokens (then a wrong token must be refused)
//   DIGITS_DIR        a folder of <label>/<n>.png to upload as a folder
//   LOOSE_FILES       ":"-separated PNG paths: a held-out "1" and a held-out "7"
//   TRY_IMAGE         a PNG to classify on the "Try it" page
//   ARTIFACTS_DIR     where screenshots and the downloaded model go
//   EPOCHS            epochs to train (default 10)
//   CHROMIUM          the browser binary (default /usr/bin/chromium)

import assert from "node:assert/strict";
import { mkdirSync, statSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";

import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const SERVER = env("MOBILETRAIN_URL");
const TOKEN = env("MOBILETRAIN_TOKEN");
const AUTH = env("MOBILETRAIN_AUTH", "1") === "1";
const DIGITS_DIR = env("DIGITS_DIR");
const LOOSE = env("LOOSE_FILES").split(":");
const TRY_IMAGE = env("TRY_IMAGE");
const ARTIFACTS = env("ARTIFACTS_DIR");
const EPOCHS = Number(env("EPOCHS", "10"));
const PROJECT = "digits-ui";

mkdirSync(ARTIFACTS, { recursive: true });

/**
 * The browser reaches the server through this TCP proxy, so the test can drop the network for
 * real: `cut()` resets every open connection (the event stream included) and refuses new ones
 * until `restore()`.
 */
const network = await (async () => {
  const target = new URL(SERVER);
  const open = new Set();
  let refusing = false;
  const state = { drops: 0 };
  const server = createServer((client) => {
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    const pair = [client, upstream];
    open.add(pair);
    const close = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get drops() {
      return state.drops;
    },
    cut() {
      refusing = true;
      for (const [client, upstream] of open) {
        state.drops += 1;
        client.resetAndDestroy();
        upstream.destroy();
      }
      open.clear();
    },
    restore() {
      refusing = false;
    },
    close: () => server.close(),
  };
})();
const BASE = network.url;

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
  ],
});
const context = await browser.newContext({
  viewport: { width: 1280, height: 900 },
  acceptDownloads: true,
  permissions: ["camera"],
});
const page = await context.newPage();
page.setDefaultTimeout(20_000);
const pageErrors = [];
page.on("pageerror", (err) => pageErrors.push(String(err)));

const shot = async (name, options = {}) => {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, ...options });
  log(`screenshot ${path}`);
};

/** Form controls without an accessible name (label, aria-label or aria-labelledby). */
const unlabelled = () =>
  page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      .filter((el) => el.type !== "hidden")
      .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")))
      .map((el) => el.outerHTML.slice(0, 120)),
  );

/** Fails when the page is wider than the viewport (a phone would have to scroll sideways). */
const assertNoSideways = async (what) => {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  if (scroll > width + 1) {
    const culprits = await page.evaluate((w) =>
      [...document.querySelectorAll("main *")]
        .filter((el) => el.getBoundingClientRect().right > w + 1)
        .filter((el) => !(el.parentElement && el.parentElement.getBoundingClientRect().right > w + 1))
        .slice(0, 5)
        .map((el) => `${el.tagName.toLowerCase()}.${el.className} (${Math.round(el.getBoundingClientRect().right)}px)`),
    width);
    assert.fail(`${what}: page is ${scroll}px wide in a ${width}px viewport: ${culprits.join(", ")}`);
  }
};

/** Every visible button and link in the page lies inside the viewport (none needs a sideways scroll). */
const assertActionsOnScreen = async (what) => {
  const off = await page.evaluate(() =>
    [...document.querySelectorAll("main button, main a[href], main summary, header button, header a[href]")]
      .filter((el) => el.getClientRects().length > 0 && !el.closest("dialog:not([open]), details:not([open]) > :not(summary)"))
      .filter((el) => {
        const r = el.getBoundingClientRect();
        return r.width > 0 && (r.right > window.innerWidth + 1 || r.left < -1);
      })
      .map((el) => `${el.tagName.toLowerCase()} "${(el.textContent ?? "").trim().slice(0, 40)}" (${Math.round(el.getBoundingClientRect().left)}–${Math.round(el.getBoundingClientRect().right)}px)`),
  );
  assert.deepEqual(off, [], `${what}: actions outside the ${await page.evaluate(() => window.innerWidth)}px viewport`);
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
    network.close();
    process.exit(1);
  }
};

let jobUrl = "";

await step("the sign-in screen refuses a wrong token and accepts the admin token", async () => {
  await page.goto(BASE);
  const token = page.getByLabel("Admin token");
  await token.waitFor();
  assert.deepEqual(await unlabelled(), []);
  await shot("signin");
  if (AUTH) {
    const direct = await page.evaluate(async () => (await fetch("/v1/projects")).status);
    assert.equal(direct, 401, "the API answers without a token");
    await token.fill("mt_wrong");
    await token.press("Enter"); // keyboard submit
    await page.getByRole("alert").filter({ hasText: "refused" }).waitFor();
  }
  await token.fill(TOKEN);
  await token.press("Enter");
  await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem("mobiletrain.token")), TOKEN);
});

await step("no project yet: the four first-run steps with the CLI's exact commands", async () => {
  const steps = page.getByTestId("first-run");
  await steps.waitFor();
  assert.deepEqual(await steps.locator("code.command").allTextContents(), [
    "mobiletrain serve",
    "mobiletrain projects create digits --width 32 --height 32",
    "mobiletrain upload ./images -p digits",
    "mobiletrain train -p digits --watch",
  ]);
  await page.setViewportSize({ width: 390, height: 844 });
  await assertNoSideways("first run");
  await shot("phone-first-run", { fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step("a new tab of the same browser is signed in (the token is in localStorage)", async () => {
  const other = await context.newPage();
  await other.goto(BASE);
  await other.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
  assert.equal(await other.getByLabel("Admin token").count(), 0);
  await other.close();
});

await step("create a 16x16 grayscale project with an open label set", async () => {
  await page.getByLabel("Name").fill(PROJECT);
  await page.getByLabel("Input width (px)").fill("16");
  await page.getByLabel("Input height (px)").fill("16");
  await page.getByLabel("Colour mode").selectOption("grayscale");
  assert.deepEqual(await unlabelled(), []);
  await page.getByRole("button", { name: "Create project" }).click();
  await page.getByRole("heading", { name: PROJECT, level: 1 }).waitFor();
  await page.waitForURL(`**/projects/${PROJECT}/dataset`);
});

await step("upload a folder of digits through the file input (folder name = label)", async () => {
  await page.setInputFiles("#folder-input", DIGITS_DIR);
  await page.getByText(/^300 of 300 files · 300 added/).waitFor({ timeout: 60_000 });
  await page.getByTestId("total-samples").filter({ hasText: /^300$/ }).waitFor();
  const bars = page.getByTestId("class-bars").locator("li");
  assert.equal(await bars.count(), 10);
  assert.equal(await page.getByRole("progressbar", { name: "Upload progress" }).getAttribute("aria-valuenow"), "100");
  assert.deepEqual(await unlabelled(), []);
  await shot("dataset");
});

await step("upload loose files with a chosen label, relabel one and delete the other", async () => {
  await page.getByLabel("Label for loose files and webcam frames").fill("7");
  await page.setInputFiles("#file-input", LOOSE);
  await page.getByText(/^2 of 2 files · 2 added/).waitFor();
  await page.getByTestId("total-samples").filter({ hasText: /^302$/ }).waitFor();
  await page.getByLabel("Label", { exact: true }).selectOption("7");
  const sevens = page.getByRole("button", { name: "Sample labelled 7: edit" });
  await page.waitForFunction(() => {
    const shown = [...document.querySelectorAll("#samples .thumb-button")];
    return shown.length >= 32 && shown.every((b) => b.getAttribute("aria-label") === "Sample labelled 7: edit");
  });
  const count = await sevens.count();
  assert.ok(count >= 32, `only ${count} sevens shown`);
  await page.getByTestId("page-status").filter({ hasText: `Page 1 of 1 · ${count} samples` }).waitFor();
  // Upload order: the held-out "1" (wrongly labelled 7) is second to last.
  await sevens.nth(count - 2).click();
  const dialog = page.getByRole("dialog");
  // The dashboard uploads under <label>/<file name>, like the CLI: the sample names its file.
  assert.equal(await dialog.getByTestId("client-id").textContent(), "7/one.png");
  await dialog.getByLabel("New label").fill("1");
  await shot("relabel");
  await dialog.getByRole("button", { name: "Relabel" }).click();
  await dialog.waitFor({ state: "detached" });
  await sevens.nth(count - 2).click();
  await dialog.getByRole("button", { name: "Delete sample" }).click();
  await dialog.getByRole("button", { name: "Really delete" }).click();
  await dialog.waitFor({ state: "detached" });
  await page.getByTestId("total-samples").filter({ hasText: /^301$/ }).waitFor();
  // The counts and the sample list reload separately: wait for the list too.
  await page.waitForFunction(
    (n) => document.querySelectorAll("#samples .thumb-button[aria-label='Sample labelled 7: edit']").length === n,
    count - 2,
  );
  await page.getByLabel("Label", { exact: true }).selectOption("");
  // 301 samples in pages of 48: the pager says where it is and how many there are.
  const status = page.getByTestId("page-status");
  await status.filter({ hasText: "Page 1 of 7 · 301 samples" }).waitFor();
  await page.getByRole("button", { name: "Next →" }).click();
  await status.filter({ hasText: "Page 2 of 7 · 301 samples" }).waitFor();
  await page.getByRole("button", { name: "← Previous" }).click();
  await status.filter({ hasText: "Page 1 of 7" }).waitFor();
});

await step("before any model, the Evaluation tab says what to do", async () => {
  await page.getByRole("link", { name: "Evaluation", exact: true }).click();
  const none = page.getByTestId("no-current-model");
  await none.waitFor();
  assert.equal(await none.getByRole("link", { name: "Train a model" }).count(), 1);
});

await step("start training from the form", async () => {
  await page.getByRole("link", { name: "Train", exact: true }).click();
  const epochs = page.getByLabel("Epochs");
  assert.equal(await epochs.inputValue(), "10", "default epochs");
  assert.equal(await page.getByLabel("Batch size").inputValue(), "32", "default batch size");
  await epochs.fill(String(EPOCHS));
  await page.getByLabel("Batch size").fill("16");
  await page.getByLabel("Learning rate").fill("0.003");
  assert.deepEqual(await unlabelled(), []);
  await page.getByRole("button", { name: "Start training" }).click();
  await page.waitForURL(/\/jobs\/[0-9a-f-]+$/);
  jobUrl = page.url();
  await page.getByTestId("job-view").waitFor();
});

const points = (id) =>
  page.getByTestId(id).getAttribute("data-points").then((v) => Number(v));

const chartPoints = () =>
  Number(document.querySelector("[data-testid=loss-chart]")?.getAttribute("data-points"));

await step("the curves gain points live", async () => {
  await page.waitForFunction(chartPoints, undefined, { timeout: 150_000 });
  await page.waitForFunction(() => {
    const n = Number(document.querySelector("[data-testid=loss-chart]")?.getAttribute("data-points"));
    return n >= 2;
  });
  assert.ok((await points("accuracy-chart")) >= 2);
  assert.ok((await page.locator("[data-series='validation loss'] circle").count()) >= 2);
  // The live view with a few points, for the README (as soon as there are 3, if still running).
  await page
    .waitForFunction(
      () =>
        Number(document.querySelector("[data-testid=loss-chart]")?.getAttribute("data-points")) >= 3 ||
        document.querySelector("[data-testid=job-state]")?.textContent !== "running",
      undefined,
      { timeout: 30_000 },
    )
    .catch(() => undefined);
  await shot("training");
});

await step("after a network drop the event stream resumes", async () => {
  if ((await page.getByTestId("job-state").textContent()) !== "running") {
    log("the job ended before the drop could be simulated");
    return;
  }
  // Reset every connection (the event stream too) and refuse new ones for a moment.
  const before = await points("loss-chart");
  network.cut();
  await page.getByText("connection lost, reconnecting…").waitFor({ timeout: 15_000 });
  await page.waitForTimeout(1500);
  network.restore();
  await page.getByText(/Events: (live|finished)/).waitFor({ timeout: 30_000 });
  log(`resumed after the drop (${network.drops} connections cut, ${before} points before)`);
});

await step("every epoch arrives exactly once and the job succeeds", async () => {
  await page.getByTestId("job-state").filter({ hasText: "succeeded" }).waitFor({ timeout: 240_000 });
  const epochs = await page.getByTestId("epoch-table").locator("tbody th").allTextContents();
  assert.deepEqual(epochs, Array.from({ length: EPOCHS }, (_, i) => String(i + 1)));
  assert.equal(await points("loss-chart"), EPOCHS);
  assert.equal(await points("accuracy-chart"), EPOCHS);
  assert.equal(await page.getByRole("progressbar", { name: "Training progress" }).getAttribute("aria-valuenow"), "100");
  // The release gate's decision is part of the result, not only of the log.
  const outcome = await page.getByTestId("job-outcome").textContent();
  assert.match(outcome ?? "", /passed the release gate and is now current/);
});

await step("the job view shows the confusion matrix and per-class metrics", async () => {
  const matrix = page.getByTestId("confusion-matrix");
  await matrix.waitFor();
  assert.equal(await matrix.locator("tbody tr").count(), 10);
  assert.equal(await page.getByTestId("per-class").locator("tbody tr").count(), 10);
  await shot("job-finished", { fullPage: true });
});

await step("models: download a model, see sizes and LiteRT accuracy, promote", async () => {
  await page.getByRole("link", { name: "Models", exact: true }).click();
  const v1 = page.getByTestId("version-1");
  await v1.waitFor();
  assert.equal(await page.getByTestId("status-1").textContent(), "current");
  assert.match((await page.getByTestId("reason-1").textContent()) ?? "", /Release gate: promoted/);
  // The model card: the release decision and per-label metrics on the evaluation set.
  await v1.getByText("Model card").click();
  const card = page.getByTestId("card-1");
  await card.waitFor();
  assert.match((await card.textContent()) ?? "", /Release decision/);
  assert.equal(await card.getByRole("table", { name: "Per label on the evaluation set" }).locator("tbody tr").count(), 10);
  const history = page.getByTestId("release-history");
  await history.waitFor();
  assert.equal(await history.getByRole("row", { name: /promoted/ }).count(), 1);
  for (const fmt of ["keras", "float32", "float16", "dynamic-int8", "int8"]) {
    assert.equal(await v1.getByRole("row", { name: new RegExp(`^${fmt} `) }).count(), 1, fmt);
  }
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download version 1 as int8" }).click(),
  ]);
  const path = join(ARTIFACTS, download.suggestedFilename());
  await download.saveAs(path);
  assert.match(download.suggestedFilename(), /\.tflite$/);
  assert.ok(statSync(path).size > 1000, "the model file is not empty");
  log(`downloaded ${path} (${statSync(path).size} bytes)`);
});

await step("models: a device token with a QR code", async () => {
  await page.getByLabel("Device name").fill("test phone");
  await page.getByRole("button", { name: "Create device token" }).click();
  await page.getByTestId("qr-code").waitFor();
  const token = await page.getByTestId("device-token").textContent();
  assert.ok(token && token.length > 10, "a token is shown");
  if (AUTH) {
    const status = await page.evaluate(
      async ([t, p]) => (await fetch(`/v1/projects/${p}`, { headers: { Authorization: `Bearer ${t}` } })).status,
      [token, PROJECT],
    );
    assert.equal(status, 200, "the device token works for its project");
    await page.getByRole("row", { name: /test phone/ }).waitFor();
  }
  assert.deepEqual(await unlabelled(), []);
  await shot("models", { fullPage: true });
});

await step("evaluation page: heatmap, per-class table, misclassified images", async () => {
  await page.getByTestId("version-1").getByRole("link", { name: "Evaluation" }).click();
  await page.getByTestId("confusion-matrix").waitFor();
  const missed = page.getByTestId("misclassified");
  if (await missed.count()) {
    await page.waitForFunction(() =>
      [...document.querySelectorAll("[data-testid=misclassified] img")].every((img) => img.complete && img.naturalWidth > 0),
    );
  } else {
    await page.getByText("Every validation image was classified correctly.").waitFor();
  }
  await shot("evaluation", { fullPage: true });
});

await step("evaluation: in the project's tabs; a misclassified image opens and is relabelled there", async () => {
  await page.getByRole("link", { name: "Dataset", exact: true }).click();
  const tabs = page.getByRole("navigation", { name: "Project sections" });
  await tabs.getByRole("link", { name: "Evaluation", exact: true }).click();
  await page.waitForURL(`**/projects/${PROJECT}/models/current`);
  assert.equal(await tabs.getByRole("link", { name: "Evaluation" }).getAttribute("aria-current"), "page");
  await page.getByTestId("confusion-matrix").waitFor();
  const missed = page.getByTestId("misclassified").locator("li");
  if (!(await missed.count())) {
    log("no misclassified image to relabel");
    return;
  }
  const first = missed.first();
  const predicted = (await first.locator(".pred-label").textContent()) ?? "";
  await first.getByRole("button").click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("New label").fill(predicted);
  await dialog.getByRole("button", { name: "Relabel" }).click();
  await dialog.waitFor({ state: "detached" });
  assert.equal(await first.getByTestId("misclassified-change").textContent(), `now “${predicted}”`);
  await page.getByText(/1 image changed since this evaluation/).waitFor();
  // The server has the new label.
  const sampleLabel = await page.evaluate(
    async ([p, label]) => {
      const headers = { Authorization: `Bearer ${localStorage.getItem("mobiletrain.token")}` };
      const resp = await fetch(`/v1/projects/${p}/samples?label=${encodeURIComponent(label)}&page_size=1000`, { headers });
      return (await resp.json()).samples.length;
    },
    [PROJECT, predicted],
  );
  assert.ok(sampleLabel > 0);
});

await step("try it: top-3 predictions for a picked image and a webcam frame", async () => {
  await page.getByRole("link", { name: "Try it", exact: true }).click();
  await page.getByLabel("Pick an image").setInputFiles(TRY_IMAGE);
  const predictions = page.getByTestId("predictions").locator("li");
  await predictions.first().waitFor();
  assert.equal(await predictions.count(), 3);
  await page.getByText("Or take a webcam frame").click();
  await page.getByRole("button", { name: "Open webcam" }).click();
  // The picked image's preview is a blob: URL too: wait for the frame's own preview (its
  // render also clears the picked image's predictions), not for any blob: URL.
  const pickedPreview = await page.locator(".preview").getAttribute("src");
  await page.getByRole("button", { name: "Classify this frame" }).click();
  await page.waitForFunction((before) => {
    const src = document.querySelector(".preview")?.getAttribute("src");
    return Boolean(src?.startsWith("blob:")) && src !== before;
  }, pickedPreview);
  await predictions.first().waitFor();
  assert.equal(await predictions.count(), 3);
  assert.deepEqual(await unlabelled(), []);
  await shot("try");
});

await step("cancelling a job asks first", async () => {
  await page.getByRole("link", { name: "Train", exact: true }).click();
  await page.getByRole("button", { name: "Start training" }).click();
  await page.waitForURL(/\/jobs\/[0-9a-f-]+$/);
  assert.notEqual(page.url(), jobUrl);
  await page.getByRole("button", { name: "Cancel job" }).click();
  const confirm = page.getByRole("group", { name: "Confirm cancelling the job" });
  await confirm.waitFor();
  await shot("cancel-confirm");
  await confirm.getByRole("button", { name: "Keep training" }).click();
  await page.getByRole("button", { name: "Cancel job" }).click();
  await confirm.getByRole("button", { name: "Yes, cancel the job" }).click();
  await page.getByTestId("job-state").filter({ hasText: "cancelled" }).waitFor({ timeout: 120_000 });
});

await step("phone width: every view fits without sideways scrolling", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [name, url] of [
    ["phone-training", jobUrl],
    ["phone-dataset", `${BASE}/projects/${PROJECT}/dataset`],
    ["phone-models", `${BASE}/projects/${PROJECT}/models`],
    ["phone-evaluation", `${BASE}/projects/${PROJECT}/models/1`],
    ["phone-projects", `${BASE}/`],
    ["phone-train", `${BASE}/projects/${PROJECT}/train`],
    ["phone-try", `${BASE}/projects/${PROJECT}/try`],
  ]) {
    await page.goto(url);
    await page.locator("main h1").first().waitFor();
    await page.waitForLoadState("networkidle");
    await assertNoSideways(name);
    await assertActionsOnScreen(name);
    await shot(name, { fullPage: true });
  }
});

await step("keyboard: the skip link and the tabs are reachable, signing out forgets the token", async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${BASE}/projects/${PROJECT}/dataset`);
  await page.getByRole("heading", { name: PROJECT }).waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
  const tabs = page.getByRole("navigation", { name: "Project sections" });
  await tabs.getByRole("link", { name: "Models" }).focus();
  await page.keyboard.press("Enter");
  await page.waitForURL(`**/projects/${PROJECT}/models`);
  assert.equal(await tabs.getByRole("link", { name: "Models" }).getAttribute("aria-current"), "page");
  const other = await context.newPage();
  await other.goto(`${BASE}/projects/${PROJECT}/models`);
  await other.getByRole("heading", { name: PROJECT }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Admin token").waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem("mobiletrain.token")), null);
  // Signing out in one tab signs out the others.
  await other.getByLabel("Admin token").waitFor();
  await other.getByText("Signed out in another tab.").waitFor();
  await other.close();
});

await step("delete the project from its Dataset page (typing its name confirms)", async () => {
  await page.getByLabel("Admin token").fill(TOKEN);
  await page.getByLabel("Admin token").press("Enter");
  // The token is checked before it is kept: wait for that before leaving the page.
  await page.getByRole("button", { name: "Sign out" }).waitFor();
  await page.goto(`${BASE}/projects/${PROJECT}/dataset`);
  await page.getByText("Delete this project…").click();
  const remove = page.getByRole("button", { name: "Delete project" });
  assert.equal(await remove.isDisabled(), true);
  await page.getByLabel(`Type “${PROJECT}” to confirm`).fill(PROJECT);
  await remove.click();
  await page.getByTestId("first-run").waitFor();
  const status = await page.evaluate(
    async (p) =>
      (await fetch(`/v1/projects/${p}`, { headers: { Authorization: `Bearer ${localStorage.getItem("mobiletrain.token")}` } })).status,
    PROJECT,
  );
  assert.equal(status, 404);
});

await browser.close();
network.close();
assert.deepEqual(pageErrors, [], "uncaught errors in the page");
log(`dashboard: all ${passed} steps passed`);
