// The live dashboard and the run history, in a real browser against a real
// `eprof serve` with the real SmolLM2 model at deep depth. Run by scripts/test.sh:
//
//   EPROF_BIN=target/debug/eprof EPROF_MODEL=<gguf> node tests/e2e/live.test.mjs
//
// It types a prompt and starts a run from the page, samples the streamed text, the
// power chart, the heatmap and the token count while the run goes (at least three
// times before it ends), checks the finished run's six views against
// `eprof show --json`, then the history: the run first, a tag filter, two runs
// compared, a delete (gone from the page and from `eprof ls`), Stop leaving a
// `cancelled` run, a deep link reopening a run and a token; and no console errors.
// It also measures the page's event handling + rendering per token against the token
// interval, and counts long frames. Screenshots: target/e2e/live-*.png (the README
// shows one, copied to docs/live-dashboard.png).
// Every loop is bounded; the server listens on 127.0.0.1 only.

import { makeChecks } from "./checks.mjs";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expectedCounts, launchChromium } from "./views.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "target/e2e");
const dataDir = join(out, "live-data");
rmSync(dataDir, { recursive: true, force: true });
mkdirSync(dataDir, { recursive: true });
const bin = resolve(root, process.env.EPROF_BIN ?? "target/debug/eprof");
const model = process.env.EPROF_MODEL;
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!model) throw new Error("EPROF_MODEL is not set (scripts/fetch-model.sh prints the path)");
for (const f of [bin, chromiumPath, model]) statSync(f);

const { check, eq, passed } = makeChecks("");
const eprof = (args) => execFileSync(bin, ["--data-dir", dataDir, ...args], { encoding: "utf8" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- the server
const server = spawn(bin, ["--data-dir", dataDir, "serve", "--port", "0", "--model", model], {
  stdio: ["ignore", "pipe", "inherit"],
});
const url = await new Promise((ok, fail) => {
  let buf = "";
  const t = setTimeout(() => fail(new Error(`eprof serve printed no address: ${buf}`)), 60000);
  server.stdout.on("data", (d) => {
    buf += d;
    const m = buf.match(/http:\/\/127\.0\.0\.1:\d+\//);
    if (m) { clearTimeout(t); ok(m[0]); }
  });
  server.on("exit", (c) => fail(new Error(`eprof serve exited (${c})`)));
});
console.log("eprof serve at", url);

const { browser, consoleErrors, newPage } = await launchChromium(chromiumPath);

try {
  const page = await newPage("live");
  await page.goto(url);
  await page.waitForSelector("#live-controls");
  await page.waitForFunction(() => document.querySelectorAll("#live-model option").length > 0);
  const models = await page.locator("#live-model option").allTextContents();
  check(models.some((m) => m.includes("SmolLM2")), `the model list offers SmolLM2 (${models.join(", ")})`);
  const synthetic = page.locator("#live-power option[value='synthetic']");
  eq(await synthetic.getAttribute("disabled"), null, "the synthetic power source is offered");
  const disabled = await page.locator("#live-power option[disabled]").count();
  console.log(`  (${disabled} power source(s) shown disabled with their reason)`);
  check(await page.locator("#history").isVisible(), "the history is shown when served by eprof serve");

  // Long tasks during the run, as the browser reports them.
  await page.evaluate(() => {
    window.eprofLongTasks = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.eprofLongTasks.push(e.duration); })
      .observe({ type: "longtask", buffered: false });
  });

  // ---------------------------------------------------------------- a live run
  const prompt = "Give me three tips for staying healthy.";
  await page.fill("#live-prompt", prompt);
  await page.selectOption("#live-depth", "deep");
  await page.selectOption("#live-power", "synthetic");
  await page.fill("#live-max-tokens", "48");
  await page.fill("#live-tags", "live-e2e");
  await page.click("#live-start");
  const snap = () => page.evaluate(() => ({
    tokens: Number(document.querySelector("#live-tokens")?.textContent ?? 0),
    text: document.querySelectorAll("#live-text .live-tok").length,
    points: Number(document.querySelector("#live-power .pw-line")?.getAttribute("data-points") ?? 0),
    cells: document.querySelectorAll("#live-heatmap .hm-cell").length,
    // The heatmap's title counts the tokens it holds ("energy, 12 tokens so far").
    heatTokens: Number((document.querySelector("#live-heatmap svg")?.textContent.match(/(\d+) tokens so far/) ?? [0, 0])[1]),
    now: document.querySelector("#live-now")?.textContent ?? "",
  }));
  const samples = [];
  let longTasks = [];
  for (let i = 0; i < 3000; i++) {
    const s = await snap();
    if (s.now.startsWith("finished") || s.now.startsWith("failed")) {
      // Long tasks while the run went (not the finished trace's load that follows).
      longTasks = await page.evaluate(() => window.eprofLongTasks.slice());
      break;
    }
    if (s.tokens > 0) samples.push(s);
    await sleep(40);
  }
  console.log("  samples while running (tokens/power points/heatmap cells/heatmap tokens):",
    samples.map((s) => `${s.tokens}/${s.points}/${s.cells}/${s.heatTokens}`).join(" "));
  const distinct = [...new Set(samples.map((s) => s.tokens))];
  check(distinct.length >= 3, `sampled ${distinct.length} distinct token counts while the run was going`);
  const [first, last] = [samples[0], samples[samples.length - 1]];
  check(last.tokens > first.tokens, `the running token count grew (${first.tokens} -> ${last.tokens})`);
  check(last.text > first.text, `the streamed text grew (${first.text} -> ${last.text} tokens)`);
  check(last.points >= first.points && last.points >= 2, `power points arrived (${first.points} -> ${last.points})`);
  check(last.cells > 0, `heatmap cells filled in (${first.cells} -> ${last.cells} cells)`);
  check(last.heatTokens > first.heatTokens, `the heatmap took in more tokens (${first.heatTokens} -> ${last.heatTokens})`);
  await page.screenshot({ path: join(out, "live-running.png") });

  // Finished: the page loads the trace into the six views.
  await page.waitForFunction(() => document.querySelector("#live-now")?.textContent.startsWith("finished"), null, { timeout: 120000 });
  // The status beside Start/Stop follows the run: not "starting" once it has ended.
  await page.waitForFunction(() => /^run \w+ finished: max_tokens$/.test(document.querySelector("#live-status")?.textContent ?? ""), null, { timeout: 10000 });
  check(/finished: max_tokens/.test(await page.locator("#live-status").textContent()), "the status beside Start says the run finished");
  await page.waitForSelector("body[data-loaded='1']", { timeout: 60000 });
  check(await page.evaluate(() => window.eprofWorker.ready) === true, "eprof serve: the run's trace was decoded in the worker");
  const runs = JSON.parse(eprof(["ls", "--json"]));
  eq(runs.length, 1, "one run in the index");
  const id = runs[0].id;
  const s = JSON.parse(eprof(["show", id, "--json"]));
  eq(Number(await page.locator("#live-tokens").textContent()), s.generated_tokens, "the live token count equals the trace's");
  // The six views (the live section draws power and heatmap too: count inside each view).
  const section = { tl: "timeline", pw: "power", hm: "heatmap", tm: "treemap", sk: "sankey", wf: "waterfall" };
  for (const [sel, n] of Object.entries(expectedCounts(s))) {
    const where = `#${section[sel.split("-")[0]]} .${sel}`;
    eq(await page.locator(where).count(), n, `finished run: ${where}`);
  }
  const live = await page.evaluate(() => window.eprofLive);
  const tokenInterval = s.duration_ns / 1e6 / s.generated_tokens;
  const perToken = live.handle_ms / s.generated_tokens;
  const long50 = longTasks.filter((d) => d > 50).length;
  console.log(`live benchmark: ${live.events} events in ${live.frames} frames; handling + rendering ${live.handle_ms.toFixed(1)} ms in all, ` +
    `${perToken.toFixed(2)} ms per token (${(live.apply_ms / s.generated_tokens).toFixed(2)} parsing and applying events, the rest redrawing) ` +
    `against a token interval of ${tokenInterval.toFixed(1)} ms: ${(perToken / tokenInterval * 100).toFixed(1)}% ` +
    `(target < 10%); long tasks over 50 ms during the run: ${long50} (longest ${Math.max(0, ...longTasks).toFixed(0)} ms)`);
  check(live.frames < live.events, "events are batched per frame, not one redraw per event");
  await page.screenshot({ path: join(out, "live-dashboard.png"), clip: { x: 0, y: 0, width: 1366, height: 900 } });

  // ---------------------------------------------------------------- history
  await page.waitForFunction((id) => document.querySelector("#hist-table .hist-row")?.dataset.id === id, id);
  check(await page.evaluate(() => document.querySelector("#hist-table .hist-row")?.dataset.id) === id, "the run is first in the history");
  const row = page.locator(`#hist-table .hist-row[data-id='${id}']`);
  check((await row.locator(".hist-labels").textContent()).includes("synthetic"), "its row shows how its figures were obtained (made up: synthetic)");
  eq(await row.locator(".hist-stop").textContent(), "max_tokens", "its row shows why it stopped");

  // A second, shorter run with another tag.
  await page.fill("#live-max-tokens", "4");
  await page.selectOption("#live-depth", "module");
  await page.fill("#live-tags", "other");
  await page.click("#live-start");
  await page.waitForFunction(() => document.querySelectorAll("#hist-table .hist-row").length === 2, null, { timeout: 120000 });
  await page.fill("#hist-tag", "live-e2e");
  await page.dispatchEvent("#hist-tag", "change");
  await page.waitForFunction(() => document.querySelectorAll("#hist-table .hist-row").length === 1);
  eq(await page.locator("#hist-table .hist-row").first().getAttribute("data-id"), id, "filtering by tag finds the run");
  await page.fill("#hist-tag", "");
  await page.dispatchEvent("#hist-tag", "change");
  await page.waitForFunction(() => document.querySelectorAll("#hist-table .hist-row").length === 2);
  const id2 = await page.locator("#hist-table .hist-row").first().getAttribute("data-id");
  check(id2 !== id, "the second run is first now");

  // Compare both.
  await page.click(`#hist-table .hist-sel[data-sel='${id}']`);
  await page.click(`#hist-table .hist-sel[data-sel='${id2}']`);
  await page.click("#hist-compare");
  await page.waitForSelector("#compare", { timeout: 60000 });
  check((await page.locator("#compare").innerText()).includes("J / token") || (await page.locator("#compare table").count()) > 0, "two runs are compared");
  eq(await page.locator("#trace-select option").count(), 2, "both runs are open");

  // Export links.
  const exports = await page.locator(`#hist-table .hist-row[data-id='${id}'] .hist-export`).count();
  eq(exports, 4, "each row offers json, chrome, eprof and csv downloads");

  // Delete the second run, confirmed.
  page.once("dialog", (d) => d.accept());
  await page.click(`#hist-table .hist-del[data-del='${id2}']`);
  await page.waitForFunction((id2) => !document.querySelector(`#hist-table .hist-row[data-id='${id2}']`), id2);
  check(!eprof(["ls", "--json"]).includes(id2), "a deleted run is gone from `eprof ls`");

  // Stop during a run.
  await page.fill("#live-max-tokens", "2000");
  await page.selectOption("#live-depth", "off");
  await page.click("#live-start");
  await page.waitForFunction(() => Number(document.querySelector("#live-tokens")?.textContent ?? 0) >= 3, null, { timeout: 120000 });
  await page.click("#live-stop");
  await page.waitForFunction(() => document.querySelector("#live-now")?.textContent.startsWith("finished (cancelled)"), null, { timeout: 120000 });
  await page.waitForFunction(() => /finished: cancelled$/.test(document.querySelector("#live-status")?.textContent ?? ""), null, { timeout: 10000 });
  check(/finished: cancelled/.test(await page.locator("#live-status").textContent()), "after Stop the status says the run was cancelled");
  await page.waitForFunction(() => document.querySelector("#hist-table .hist-row .hist-stop")?.textContent === "cancelled", null, { timeout: 60000 });
  check(await page.locator("#hist-table .hist-row .hist-stop").first().textContent() === "cancelled", "Stop leaves a cancelled run in the history");

  // A deep link reopens a run and a token.
  const deep = await newPage("deep-link");
  await deep.goto(`${url}#run=${id}&token=12&metric=time`);
  await deep.waitForSelector("body[data-loaded='1']", { timeout: 60000 });
  await deep.waitForFunction(() => document.querySelector("#token-label")?.textContent.startsWith("token 12"));
  check((await deep.locator("#token-label").textContent()).startsWith("token 12"), "a deep link reopens the run at token 12");
  eq(await deep.locator("#metric").inputValue(), "time", "the deep link chose the heatmap metric");
  eq(await deep.locator("#trace-select option").textContent(), `${id}.eprof`, "the deep link opened the right run");
  const hash = await deep.evaluate(() => location.hash);
  check(hash.includes(`run=${id}`) && hash.includes("token=12") && hash.includes("metric=time"), `the URL keeps the run, token and metric (${hash})`);

  // A server with a token: the history's downloads carry it (a link cannot send the
  // Authorization header), and they download.
  const token = "0123456789abcdef0123";
  const tokenServer = spawn(bin, ["--data-dir", dataDir, "serve", "--port", "0", "--model", model, "--token", token], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const turl = await new Promise((ok, fail) => {
      let buf = "";
      const t = setTimeout(() => fail(new Error(`eprof serve --token printed no address: ${buf}`)), 60000);
      tokenServer.stdout.on("data", (d) => {
        buf += d;
        const m = buf.match(/http:\/\/127\.0\.0\.1:\d+\//);
        if (m) { clearTimeout(t); ok(m[0]); }
      });
      tokenServer.on("exit", (c) => fail(new Error(`eprof serve --token exited (${c})`)));
    });
    const tp = await newPage("token-server");
    await tp.goto(`${turl}#auth=${token}`);
    await tp.waitForSelector(`#hist-table .hist-row[data-id='${id}'] .hist-export`, { timeout: 60000 });
    const hrefs = await tp.locator(`#hist-table .hist-row[data-id='${id}'] .hist-export`).evaluateAll((as) => as.map((a) => a.href));
    eq(hrefs.length, 4, "the token server's history offers the four downloads");
    check(hrefs.every((h) => h.includes(`token=${token}`)), `each download link carries the token (${hrefs[0]})`);
    for (const h of hrefs) {
      const r = await tp.evaluate(async (h) => { const r = await fetch(h); return { status: r.status, size: (await r.arrayBuffer()).byteLength }; }, h);
      check(r.status === 200 && r.size > 0, `download ${h.split("?")[1].split("&token")[0]}: ${r.status}, ${r.size} bytes`);
    }
    // (Fetched from here, not the page: the page would log the refusal as an error.)
    const bare = (await fetch(hrefs[0].replace(/&token=[^&]*/, ""))).status;
    eq(bare, 401, "the same link without the token is refused");
  } finally {
    tokenServer.kill();
  }

  // The offline file has none of it (the viewer test checks the rest of it).
  const offline = await newPage("offline");
  await offline.goto(`file://${join(root, "target/viewer/eprof-viewer.html")}`);
  await offline.waitForSelector("#file-input");
  eq(await offline.locator("#live-controls, #history").count(), 0, "the offline page shows no live or history controls");

  eq(consoleErrors.length, 0, `no console errors${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);
  console.log(`\nlive dashboard e2e: ${passed()} checks passed`);
} finally {
  await browser.close();
  server.kill();
}
