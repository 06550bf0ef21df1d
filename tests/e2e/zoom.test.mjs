// The viewer's time views in Chromium, on a real trace: zoom and pan (wheel, shift,
// keys) move the time track and the power chart together; a dragged range shows the
// same energy as `eprof show --from --to`; the icicle's nodes sum to the run and zoom
// on a click; search finds a token and a site; a link restores token, metric, range
// and zoom. Run by scripts/test.sh after viewer.test.mjs:
//
//   EPROF_BIN=target/debug/eprof EPROF_MODEL=<gguf> node tests/e2e/zoom.test.mjs
//
// Nothing is skipped: a missing browser, binary or model is a failure.

import { makeChecks, serveView } from "./checks.mjs";
import { execFileSync } from "node:child_process";
import { mkdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { launchChromium } from "./views.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "target/e2e");
mkdirSync(out, { recursive: true });
const bin = resolve(root, process.env.EPROF_BIN ?? "target/debug/eprof");
const model = process.env.EPROF_MODEL;
const viewerHtml = join(root, "target/viewer/eprof-viewer.html");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const dataDir = join(out, "zoom-data");

const { check, eq, passed } = makeChecks("");
const eprof = (args) => execFileSync(bin, ["--data-dir", dataDir, ...args], { encoding: "utf8" });
const close = (a, b, rel = 1e-9) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-300);

if (!model) throw new Error("EPROF_MODEL is not set (scripts/fetch-model.sh prints the path)");
for (const f of [bin, viewerHtml, chromiumPath, model]) statSync(f);

console.log("recording a real trace");
const tracePath = join(out, "zoom.eprof");
eprof(["record", "Name three colours of the rainbow.", "--model", model, "--depth", "deep",
  "--max-tokens", "12", "--idle-ms", "0", "--out", tracePath]);
const s = JSON.parse(eprof(["show", tracePath, "--json"]));

const { browser, consoleErrors, newPage } = await launchChromium(chromiumPath);
const page = await newPage("zoom");
await page.goto(pathToFileURL(viewerHtml).href);
await page.waitForSelector("#file-input");
await page.setInputFiles("#file-input", tracePath);
await page.waitForSelector("body[data-loaded='1']");

// ------------------------------------------------------------- zoom and pan
const win = (sel) => page.$eval(sel, (e) => [Number(e.dataset.t0), Number(e.dataset.t1)]);
const windows = async () => ({ track: await win("#track-box .tr-plot"), power: await win("#power-box .pw-plot") });
const whole = await windows();
check(whole.track[0] === whole.power[0] && whole.track[1] === whole.power[1], `the time track and the power chart show the same stretch (${whole.track})`);
// x in CSS px of a fraction of a chart's plot (viewBox 1000 wide, plot from 60, 920 wide).
async function at(sel, frac) {
  await page.locator(sel).scrollIntoViewIfNeeded();
  const b = await page.locator(`${sel} svg`).boundingBox();
  return { x: b.x + (b.width * (60 + frac * 920)) / 1000, y: b.y + b.height * 0.3 };
}
let p = await at("#power-box", 0.5);
await page.mouse.move(p.x, p.y);
for (let i = 0; i < 4; i++) await page.mouse.wheel(0, -200);
await page.waitForFunction((w) => Number(document.querySelector("#power-box .pw-plot").dataset.t1) - Number(document.querySelector("#power-box .pw-plot").dataset.t0) < w, whole.power[1] - whole.power[0]);
const zoomed = await windows();
const span = (w) => w[1] - w[0];
check(span(zoomed.power) < 0.5 * span(whole.power), `the wheel zooms in: ${span(whole.power)} -> ${span(zoomed.power)} ns`);
check(zoomed.track.join() === zoomed.power.join(), "the time track zoomed with the power chart");
const mid = (w) => (w[0] + w[1]) / 2;
check(Math.abs(mid(zoomed.power) - mid(whole.power)) < 0.02 * span(whole.power), "zoomed around the pointer (the middle stays the middle)");
await page.keyboard.down("Shift");
await page.mouse.wheel(0, 150);
await page.keyboard.up("Shift");
await page.waitForFunction((t0) => Number(document.querySelector("#power-box .pw-plot").dataset.t0) !== t0, zoomed.power[0]);
const panned = await windows();
check(panned.power[0] > zoomed.power[0] && Math.abs(span(panned.power) - span(zoomed.power)) <= 2, `shift + wheel pans: t0 ${zoomed.power[0]} -> ${panned.power[0]}, same width`);
check(panned.track.join() === panned.power.join(), "the time track panned with the power chart");
// Shift-drag on the track pans back.
p = await at("#track-box", 0.5);
await page.keyboard.down("Shift");
await page.mouse.move(p.x, p.y);
await page.mouse.down();
await page.mouse.move(p.x + 120, p.y, { steps: 6 });
await page.mouse.up();
await page.keyboard.up("Shift");
const dragged = await windows();
check(dragged.power[0] < panned.power[0], `shift-drag pans the other way: t0 ${panned.power[0]} -> ${dragged.power[0]}`);
await page.locator("body").press("0");
await page.waitForFunction((t1) => Number(document.querySelector("#power-box .pw-plot").dataset.t1) === t1, whole.power[1]);
check((await windows()).power.join() === whole.power.join(), "the 0 key shows the whole run again");
await page.locator("body").press("+");
await page.waitForFunction((w) => Number(document.querySelector("#track-box .tr-plot").dataset.t1) - Number(document.querySelector("#track-box .tr-plot").dataset.t0) < w, span(whole.track));
check(Math.abs(span((await windows()).track) - span(whole.track) / 2) <= 2, "+ zooms in by half");
await page.locator("body").press("-");
await page.waitForFunction((t1) => Number(document.querySelector("#track-box .tr-plot").dataset.t1) === t1, whole.track[1]);
check((await windows()).track.join() === whole.track.join(), "- zooms back out");

// ------------------------------------------------------------- range and its energy
async function dragRange(sel, f0, f1) {
  const a = await at(sel, f0);
  const b = await at(sel, f1);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move(b.x, b.y, { steps: 8 });
  await page.mouse.up();
  await page.waitForSelector("#range-cost");
  return page.$eval("#range-cost", (e) => ({ from: e.dataset.from, to: e.dataset.to, joules: Number(e.dataset.joules), tokens: e.dataset.tokens }));
}
for (const [sel, f0, f1] of [["#track-box", 0.35, 0.8], ["#power-box", 0.1, 0.45]]) {
  const r = await dragRange(sel, f0, f1);
  const cli = JSON.parse(eprof(["show", tracePath, "--from", r.from, "--to", r.to, "--json"]));
  check(close(r.joules, cli.total.joules), `${sel}: the range ${r.from}..${r.to} costs ${r.joules} J in the viewer and ${cli.total.joules} J from eprof show --from --to`);
  check(r.tokens === (cli.tokens ? cli.tokens.join("-") : ""), `${sel}: the same tokens (${r.tokens})`);
}
await page.locator("#power .zoom-range, #timeline .zoom-range").first().click();
const toRange = await windows();
const sel = await page.$eval("#range-cost", (e) => [Number(e.dataset.from), Number(e.dataset.to)]);
check(Math.abs(toRange.power[0] - sel[0]) <= 1 && Math.abs(toRange.power[1] - sel[1]) <= 1, "zoom to range shows the range");
await page.locator("body").press("Escape");
await page.waitForFunction(() => !document.querySelector("#range-cost"));
check(await page.locator("#range-cost").count() === 0 && !(await page.locator("#track-box .sel-range").count()), "Esc clears the range (panel and overlay)");
await page.locator("body").press("0");

// ------------------------------------------------------------- icicle
const nodes = await page.$$eval("#icicle .ic-node", (ns) => ns.map((n) => ({ path: n.dataset.path, name: n.dataset.name, v: Number(n.dataset.v) })));
const byPath = new Map(nodes.map((n) => [n.path, n]));
const runJ = s.phases.reduce((a, ph) => a + (ph.energy?.joules ?? 0), 0);
check(close(byPath.get("").v, runJ), `the icicle's run is the phases' energy: ${byPath.get("").v} J vs ${runJ} J`);
let parents = 0;
for (const n of nodes) {
  const kids = nodes.filter((c) => c.path.split(".").length === (n.path === "" ? 1 : n.path.split(".").length + 1) && (n.path === "" ? !c.path.includes(".") && c.path !== "" : c.path.startsWith(n.path + ".")));
  if (!kids.length) continue;
  parents++;
  const sum = kids.reduce((a, c) => a + c.v, 0);
  if (!close(sum, n.v)) throw new Error(`FAILED: icicle node ${n.path} ${n.name}: children sum ${sum} vs ${n.v}`);
}
check(parents > s.layers.length, `every one of the icicle's ${parents} parent nodes is the sum of its children`);
for (const name of ["decode", "layers", "L0", "q_proj", "softmax"]) check(nodes.some((n) => n.name === name), `the icicle has ${name}`);
const decode = nodes.find((n) => n.name === "decode" && !n.path.includes("."));
await page.locator(`#icicle .ic-node[data-path='${decode.path}'] rect`).click();
await page.waitForFunction(() => document.querySelectorAll("#icicle .ic-crumbs .crumb").length === 2);
check((await page.$eval("#icicle .ic-node", (n) => n.dataset.name)) === "decode", "a click zooms the icicle into decode");
await page.locator("#icicle .ic-crumbs .crumb").first().click();
await page.waitForFunction(() => document.querySelectorAll("#icicle .ic-crumbs .crumb").length === 1);
check((await page.$eval("#icicle .ic-node", (n) => n.dataset.name)) === "run", "the breadcrumb leads back out");

// ------------------------------------------------------------- search
const tok = s.tokens.find((t, i) => i >= 2 && t.text.trim().length >= 3) ?? s.tokens[1];
const q = tok.text.trim();
const want = s.tokens.findIndex((t) => t.text.includes(q) || t.text.trim() === q);
await page.fill("#search", q);
await page.locator("#search").press("Enter");
await page.waitForFunction(() => document.querySelector("#search-result").textContent.startsWith("token"));
const label = await page.locator("#token-label").innerText();
check(label.startsWith(`token ${s.tokens[want].step ?? want}`), `searching ${JSON.stringify(q)} selects its token (${label})`);
await page.fill("#search", "L1.q_proj");
await page.locator("#search").press("Enter");
await page.waitForFunction(() => document.querySelector("#search-result").textContent === "site L1.q_proj");
check(await page.$eval("#drill-layer", (e) => e.value) === "1", "searching L1.q_proj opens layer 1 in the drilldown");
const stroke = await page.$eval('#heatmap .hm-cell[data-layer="1"][data-comp="q_proj"]', (e) => getComputedStyle(e).strokeWidth);
check(stroke === "3px", `and marks its heatmap cell (stroke ${stroke})`);

// ------------------------------------------------------------- a link restores the view
const { url, server } = await serveView(bin, dataDir, tracePath);
try {
  const [t0, t1] = whole.power;
  const zoom = [Math.round(t0 + (t1 - t0) * 0.2), Math.round(t0 + (t1 - t0) * 0.7)];
  const range = [Math.round(t0 + (t1 - t0) * 0.3), Math.round(t0 + (t1 - t0) * 0.5)];
  const link = `${url}#token=3&metric=time&range=${range.join("-")}&zoom=${zoom.join("-")}`;
  const p2 = await newPage("link");
  await p2.goto(link);
  await p2.waitForSelector("body[data-loaded='1']");
  await p2.waitForSelector("#range-cost");
  check((await p2.locator("#token-label").innerText()).startsWith("token 3"), "the link restores the token");
  check(await p2.$eval("#metric", (e) => e.value) === "time", "the link restores the heatmap metric");
  const r = await p2.$eval("#range-cost", (e) => [Number(e.dataset.from), Number(e.dataset.to)]);
  check(r.join() === range.join(), `the link restores the range (${r})`);
  const w = await p2.$eval("#power-box .pw-plot", (e) => [Number(e.dataset.t0), Number(e.dataset.t1)]);
  check(w.join() === zoom.join(), `the link restores the zoom (${w})`);
  // And the page's URL follows a change.
  await p2.locator("body").press("ArrowRight");
  await p2.waitForFunction(() => location.hash.includes("token=4"));
  const hash = await p2.evaluate(() => location.hash);
  check(hash.includes("token=4") && hash.includes(`range=${range.join("-")}`) && hash.includes("metric=time"), `the URL follows the selection (ArrowRight): ${hash}`);
  await p2.screenshot({ path: join(out, "09-zoom-link.png"), fullPage: false });
  await p2.close();
} finally {
  server.kill();
}

await page.close();
await browser.close();
check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);
console.log(`\nviewer zoom, range, icicle, search, links: ${passed()} checks passed`);
