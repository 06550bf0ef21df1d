// End-to-end test of the eprof viewer in a real browser (Debian chromium driven by
// playwright-core), then the load benchmark. Run by scripts/test.sh:
//
//   EPROF_BIN=target/debug/eprof EPROF_MODEL=<gguf> node tests/e2e/viewer.test.mjs
//
// It records a real trace with the CLI, opens target/viewer/eprof-viewer.html from
// file://, loads the trace through the file input and through drag-and-drop, checks
// every view against the figures `eprof show --json` gives for the same trace, moves
// the token slider and changes the metric, opens a truncated and a too-new trace,
// opens `eprof view --html` output and `eprof view`'s server, and fails on any console
// error. Screenshots go to target/e2e/. Exits non-zero on the first failure; nothing
// is skipped (a missing browser, binary or model is a failure).

import { makeChecks, serveView } from "./checks.mjs";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { expectedCounts, launchChromium } from "./views.mjs";
import { benchLoad } from "./load-bench.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "target/e2e");
mkdirSync(out, { recursive: true });
const bin = resolve(root, process.env.EPROF_BIN ?? "target/debug/eprof");
const model = process.env.EPROF_MODEL;
const viewerHtml = join(root, "target/viewer/eprof-viewer.html");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const dataDir = join(out, "data");

const { check, eq, passed } = makeChecks("");
function eprof(args) {
  return execFileSync(bin, ["--data-dir", dataDir, ...args], { encoding: "utf8" });
}

if (!model) throw new Error("EPROF_MODEL is not set (scripts/fetch-model.sh prints the path)");
for (const f of [bin, viewerHtml, chromiumPath, model]) statSync(f); // throws if missing

// ---------------------------------------------------------------- a real trace
console.log("recording a real trace with", bin);
const tracePath = join(out, "real.eprof");
eprof([
  "record", "Name three colours of the rainbow.", "--model", model, "--depth", "deep",
  "--max-tokens", "16", "--idle-ms", "0", "--tag", "e2e", "--out", tracePath,
]);
const s = JSON.parse(eprof(["show", tracePath, "--json"]));
const layers = s.layers.length;
const comps = s.components.length;
const generated = s.tokens.length;
const phasesWithEnergy = s.phases.filter((p) => (p.energy?.joules ?? 0) > 0).length;
console.log(`trace: ${layers} layers, ${comps} components, ${generated} generated tokens, ${s.phases.length} phases`);
check(layers > 0 && comps > 0 && generated > 1, "the recorded trace has layers, components and tokens");
// What each view must draw for this trace (firefox.test.mjs checks the same).
const expected = expectedCounts(s);
writeFileSync(join(out, "expected.json"), JSON.stringify(expected, null, 1));

// A cut-short copy and one that claims a newer format.
const bytes = readFileSync(tracePath);
const truncatedPath = join(out, "truncated.eprof");
writeFileSync(truncatedPath, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
const newerPath = join(out, "newer.eprof");
const newer = Buffer.from(bytes);
newer.writeUInt16LE(999, 8);
writeFileSync(newerPath, newer);
const synthPath = join(out, "synthetic-small.eprof");
execFileSync("cargo", ["xtask", "synth", "--tokens", "6", "--layers", "4", "--depth", "module", synthPath], { cwd: root, stdio: "inherit" });

// ---------------------------------------------------------------- browser
const { browser, consoleErrors, newPage } = await launchChromium(chromiumPath);
const fileUrl = pathToFileURL(viewerHtml).href;
const count = (page, sel) => page.locator(sel).count();

async function checkViews(page, label) {
  // Run summary.
  const summary = await page.locator("#summary").innerText();
  check(summary.includes("Name three colours of the rainbow."), `${label}: summary shows the prompt`);
  check(summary.includes(basename(model)), `${label}: summary shows the model (${basename(model)})`);
  check(/J \/ token/.test(summary) && /power source/.test(summary), `${label}: summary shows J/token and the power source`);
  // Pipeline timeline.
  eq(await count(page, "#timeline .tl-phase"), s.phases.length, `${label}: timeline phase bars`);
  eq(await count(page, "#timeline .tl-sec"), s.sections.length, `${label}: timeline section bars`);
  // Power time series.
  const lines = await count(page, "#power .pw-line");
  check(lines >= 1, `${label}: power series has ${lines} line(s)`);
  const points = Number(await page.locator("#power .pw-line").first().getAttribute("data-points"));
  check(points >= 2, `${label}: power line has ${points} points`);
  eq(await count(page, "#power .pw-band"), s.phases.length, `${label}: power phase bands`);
  // Heatmap.
  eq(await count(page, "#heatmap .hm-cell"), s.layer_components.length, `${label}: heatmap cells with data`);
  eq(await count(page, "#heatmap .hm-cell, #heatmap .hm-empty"), layers * comps, `${label}: heatmap cells (layers x components)`);
  // Treemap.
  eq(await count(page, "#treemap .tm-node"), phasesWithEnergy, `${label}: treemap phase rectangles`);
  // Sankey.
  eq(await count(page, "#sankey .sk-node[data-col='2'][data-layer]"), layers, `${label}: sankey layer nodes`);
  eq(await count(page, "#sankey .sk-node[data-col='4']"), comps, `${label}: sankey component nodes`);
  // Token waterfall.
  eq(await count(page, "#waterfall .wf-tok"), generated, `${label}: waterfall token bars`);
  // Drilldown (deep trace: attention and its operations).
  check(await count(page, "#drilldown .drill-op") >= 2, `${label}: drilldown lists attention's operations`);
  check(await count(page, "#drilldown .drill-metric") >= 1, `${label}: drilldown lists tensor metrics`);
}

// 1. file input
console.log("file input");
let page = await newPage("file-input");
await page.goto(fileUrl);
await page.waitForSelector("#file-input");
await page.setInputFiles("#file-input", tracePath);
await page.waitForSelector("body[data-loaded='1']");
await checkViews(page, "file input");
check(await page.evaluate(() => window.eprofWorker.ready) === true, "file://: the trace was decoded in the worker");
await page.screenshot({ path: join(out, "01-loaded.png"), fullPage: true });

// Token slider and metric selector change the heatmap.
const heat = () => page.locator("#heatmap .chart-box").innerHTML();
const before = await heat();
await page.locator("#token-slider").fill(String(Math.floor(generated / 2)));
await page.waitForFunction(() => document.querySelector("#token-label").textContent.startsWith("token"));
// The heatmap of one token comes from the worker that holds the spans.
await page.waitForFunction(() => {
  const token = document.querySelector("#token-label").textContent.split(":")[0];
  return document.querySelector("#heatmap svg").textContent.includes(token);
});
const afterSlider = await heat();
check(afterSlider !== before, "moving the token slider changes the heatmap");
check((await page.locator("#token-label").innerText()).startsWith(`token ${Math.floor(generated / 2)}`), "the token label follows the slider");
const metrics = await page.locator("#metric option").allTextContents();
check(metrics.includes("activation/std"), `metric selector offers probe metrics (${metrics.join(", ")})`);
await page.selectOption("#metric", "activation/std");
await page.waitForFunction(() => document.querySelector("#heatmap svg").textContent.includes("activation/std"));
check((await heat()) !== afterSlider, "changing the metric changes the heatmap");
const linear = await heat();
await page.locator("#log-scale").check();
await page.waitForFunction(() => document.querySelector("#heatmap svg").textContent.includes("log scale"));
check((await heat()) !== linear, "the log colour scale re-colours the heatmap");
await page.locator("#heatmap").screenshot({ path: join(out, "02-heatmap-activation-std.png") });

// Clicking a token in the waterfall selects it everywhere.
await page.locator("#waterfall .wf-tok[data-step='3'] rect").first().click({ force: true });
await page.waitForSelector("#waterfall .wf-sel[data-step='3']");
check((await page.locator("#token-label").innerText()).startsWith("token 3"), "a waterfall click selects the token for the heatmap");
eq(await page.locator("#token-slider").inputValue(), "3", "the slider follows the waterfall click");

// The waterfall fits decode tokens: the prefill bar (the whole prompt) is cut and
// labelled; unticking shows it whole.
eq(await count(page, "#waterfall .wf-cut"), 1, "the prefill bar is cut to fit the decode tokens");
await page.locator("#fit-decode").uncheck();
await page.waitForFunction(() => document.querySelectorAll("#waterfall .wf-cut").length === 0);
eq(await count(page, "#waterfall .wf-cut"), 0, "unticking shows the prefill bar whole");

// Treemap zoom: into decode, then its layers.
const decodeIdx = await page.locator("#treemap .tm-node[data-name='decode']").getAttribute("data-idx");
await page.locator(`#treemap .tm-node[data-idx='${decodeIdx}'] rect`).first().click({ force: true });
await page.waitForFunction(() => document.querySelectorAll("#treemap .tm-node[data-name^='L']").length > 0);
eq(await count(page, "#treemap .tm-node[data-name^='L']"), layers, "treemap zoomed into decode shows every layer");
// Heatmap click drives the drilldown.
await page.locator("#heatmap .hm-cell[data-layer='2'][data-comp='q_proj']").click({ force: true });
await page.waitForFunction(() => document.querySelector("#drilldown h3").textContent.includes("L2 · q_proj"));
check((await page.locator("#drilldown h3").textContent()).includes("L2 · q_proj"), "a heatmap click opens that cell in the drilldown");
// Energy/time toggle re-sizes the timeline.
const tlEnergy = await page.locator("#breakdown-box").innerHTML();
await page.selectOption("#measure", "time");
check((await page.locator("#breakdown-box").innerHTML()) !== tlEnergy, "the duration/energy toggle re-sizes the timeline");
// Power hover readout (the chart centred first: after the heatmap click it can sit
// under the sticky header, where a hover reaches the header).
await page.evaluate(() => document.querySelector("#power").scrollIntoView({ block: "center" }));
const box = await page.locator("#power svg").boundingBox();
await page.locator("#power svg").hover({ position: { x: box.width * 0.5, y: box.height * 0.5 }, force: true });
await page.waitForFunction(() => document.querySelector("#power .readout").textContent.includes(" W"));
check((await page.locator("#power .readout").textContent()).includes(" W"), "hovering the power chart shows a readout in watts");
await page.screenshot({ path: join(out, "03-interacted.png"), fullPage: true });

// Compare: open a second trace (another model) next to the first.
await page.setInputFiles("#file-input", synthPath);
await page.waitForSelector("body[data-loaded='2']");
await page.waitForSelector("#compare");
eq(await count(page, "#compare .cmp-bar"), layers + 4, "compare draws every layer of both traces");
const cmp = await page.locator("#compare table").innerText();
check(cmp.includes(basename(model)) && cmp.includes("synthetic"), "compare lists both models");
await page.locator("#compare").screenshot({ path: join(out, "04-compare.png") });
await page.close();

// A browser without workers: the page decodes on its own thread, and the views are
// the same.
console.log("no worker");
{
  const p = await newPage("no worker");
  await p.addInitScript(() => { window.Worker = undefined; });
  await p.goto(fileUrl);
  await p.waitForSelector("#file-input");
  await p.setInputFiles("#file-input", tracePath);
  await p.waitForSelector("body[data-loaded='1']");
  check(await p.evaluate(() => window.eprofWorker.ready) === false, "no worker: the page decoded the trace itself");
  await checkViews(p, "no worker");
  await p.locator("#token-slider").fill("3");
  await p.waitForFunction(() => document.querySelector("#heatmap svg").textContent.includes("token 3"));
  check((await p.locator("#heatmap svg").textContent()).includes("token 3"), "no worker: the slider redraws the heatmap");
  await p.close();
}

// 2. drag and drop
console.log("drag and drop");
page = await newPage("drop");
await page.goto(fileUrl);
await page.waitForSelector("#file-input");
const dt = await page.evaluateHandle(({ b64, name }) => {
  const bin = atob(b64);
  const u = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
  const d = new DataTransfer();
  d.items.add(new File([u], name));
  return d;
}, { b64: bytes.toString("base64"), name: "dropped.eprof" });
await page.dispatchEvent("header", "dragover", { dataTransfer: dt });
await page.dispatchEvent("header", "drop", { dataTransfer: dt });
await page.waitForSelector("body[data-loaded='1']");
await checkViews(page, "drag-and-drop");
await page.close();

// 3. bad files: truncated (what was recovered) and newer format (which version).
console.log("bad files");
page = await newPage("bad");
await page.goto(fileUrl);
await page.waitForSelector("#file-input");
await page.setInputFiles("#file-input", truncatedPath);
await page.waitForSelector(".warn, .error");
const msg = await page.locator(".warn, .error").first().innerText();
check(/truncated/i.test(msg), `a truncated trace says so: "${msg.slice(0, 120)}"`);
check(/recovered/.test(msg), "and says what was recovered");
await page.screenshot({ path: join(out, "05-truncated.png"), fullPage: false });
await page.setInputFiles("#file-input", newerPath);
await page.waitForSelector("#errors .error");
const newerMsg = await page.locator("#errors .error").innerText();
check(/newer than this reader \(format 999/.test(newerMsg), `a newer trace names its version: "${newerMsg}"`);
await page.close();

// 4. `eprof view --html`: one file with the trace inside, loaded on open.
console.log("eprof view --html");
const shared = join(out, "shared.html");
eprof(["view", tracePath, "--html", shared]);
page = await newPage("view-html");
await page.goto(pathToFileURL(shared).href);
await page.waitForSelector("body[data-loaded='1']");
await checkViews(page, "view --html");
await page.close();

// 5. `eprof view`: served on 127.0.0.1, the page fetches ?trace=<url>.
console.log("eprof view (served)");
const { url, server } = await serveView(bin, dataDir, tracePath);
try {
  page = await newPage("served");
  await page.goto(url);
  await page.waitForSelector("body[data-loaded='1']");
  eq(await count(page, "#waterfall .wf-tok"), generated, "served viewer: waterfall token bars");
  check(await page.evaluate(() => window.eprofWorker.ready) === true, "served viewer: the trace was decoded in the worker");
  await page.close();
} finally {
  server.kill();
}

check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);

// The big traces and the benchmark do not depend on the model: scripts/test.sh runs
// them once, with the SmolLM2 trace, and passes --views-only for the Gemma 3 one.
if (process.argv.includes("--views-only")) {
  await browser.close();
  console.log(`\nviewer e2e (views only; big traces and benchmark in the other run): ${passed()} checks passed; screenshots in ${out}`);
  process.exit(0);
}

// ---------------------------------------------------------------- loading big traces
// A 10,000-token x 30-layer deep trace (128 MB) loads in the worker with a progress
// bar, and a second trace dropped meanwhile loads too.
console.log("\nbig traces");
const bench1k = join(out, "bench-1000x30-deep.eprof");
const bench10k = join(out, "bench-10000x30-deep.eprof");
execFileSync("cargo", ["xtask", "synth", "--tokens", "1000", "--layers", "30", "--depth", "deep", bench1k], { cwd: root, stdio: "inherit" });
execFileSync("cargo", ["xtask", "synth", "--tokens", "10000", "--layers", "30", "--depth", "deep", bench10k], { cwd: root, stdio: "inherit" });
{
  const p = await newPage("big");
  await p.goto(fileUrl);
  await p.waitForSelector("#file-input");
  await p.setInputFiles("#file-input", bench10k);
  const bar = await p.waitForSelector("#loading progress", { timeout: 20000 });
  check(await bar.evaluate((e) => e.tagName === "PROGRESS"), "a progress bar shows while the 10,000-token trace loads");
  await p.setInputFiles("#file-input", synthPath);
  await p.waitForSelector("body[data-loaded='2']", { timeout: 120000 });
  eq(await p.locator("#trace-select option").count(), 2, "a trace opened during the load is added too");
  eq(await p.locator("#loading progress").count(), 0, "no progress bar once both are loaded");
  await p.selectOption("#trace-select", "0");
  await p.waitForFunction(() => document.querySelector("#summary").textContent.includes("10000 generated"));
  const bars = await p.locator("#waterfall .wf-tok").count();
  check(bars > 900 && bars <= 1001, `the 10,000-token waterfall draws ${bars} bars (tokens share bars beyond 1,000)`);
  await p.close();
}

// A trace too large for the viewer's memory (80,000 tokens, 1 GB: decoded it needs more
// than WebAssembly's 4 GB): a clear error naming the file, the trace already open stays
// open, and the next trace opens.
{
  const huge = join(out, "huge-80000x30-deep.eprof");
  execFileSync("cargo", ["xtask", "synth", "--tokens", "80000", "--layers", "30", "--depth", "deep", huge], { cwd: root, stdio: "inherit" });
  const p = await newPage("too large");
  await p.goto(fileUrl);
  await p.waitForSelector("#file-input");
  await p.setInputFiles("#file-input", synthPath);
  await p.waitForSelector("body[data-loaded='1']");
  await p.setInputFiles("#file-input", huge);
  await p.waitForFunction(() => document.querySelector("#errors").textContent.length > 0, null, { timeout: 120000 });
  const err = await p.locator("#errors").innerText();
  check(err.includes(basename(huge)) && err.includes("out of memory"), `a trace too large for the viewer says so: ${err}`);
  eq(await p.locator("#trace-select option").count(), 1, "the trace open before is still open");
  check((await p.locator("#summary").innerText()).includes("synthetic"), "its views still show");
  await p.setInputFiles("#file-input", synthPath);
  await p.waitForSelector("body[data-loaded='2']", { timeout: 60000 });
  check(await p.locator("#heatmap .hm-cell").count() > 0, "the next trace opens, its heatmap drawn by the restarted worker");
  await p.close();
  unlinkSync(huge);
  check(consoleErrors.length === 0, `reported as an error on the page, no console errors${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);
}

// ---------------------------------------------------------------- benchmark
// Load-to-rendered of the 1,000- and 10,000-token traces (3 fresh pages each), the
// longest main-thread task, memory, and a slider drag across 10,000 tokens; and the
// size of the viewer file. Printed, not asserted.
console.log("\nbenchmark");
const htmlBytes = statSync(viewerHtml).size;
console.log(`viewer file: ${htmlBytes} bytes (${(htmlBytes / 1048576).toFixed(3)} MiB; target < 1 MiB: ${(htmlBytes / 1048576).toFixed(2)}x of it)`);
const b1 = await benchLoad({ newPage, fileUrl, tracePath: bench1k, label: "1,000 tokens x 30 layers, deep", screenshot: join(out, "06-bench-1000x30.png") });
const b10 = await benchLoad({ newPage, fileUrl, tracePath: bench10k, label: "10,000 tokens x 30 layers, deep", drag: true, zoom: true, screenshot: join(out, "08-bench-10000x30.png") });
console.log(`targets: 1,000 tokens < 500 ms: ${(b1.total / 500).toFixed(2)}x of it; 10,000 tokens < 3000 ms: ${(b10.total / 3000).toFixed(2)}x of it; longest task < 200 ms: ${Math.max(b1.longest, b10.longest).toFixed(0)} ms; zoom and pan across 10,000 tokens: at most ${b10.zoomOver50} frame(s) over 50 ms per page`);
check(consoleErrors.length === 0, "no console errors during the benchmark");

await browser.close();
console.log(`\nviewer e2e: ${passed()} checks passed; screenshots in ${out}`);
