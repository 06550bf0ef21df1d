// Screenshots of the viewer's time views, icicle and search on a real run, for
// docs/viewer.md (scripts/screenshots.sh runs this): element screenshots, PNG.
//
//   EPROF_BIN=target/debug/eprof EPROF_MODEL=<gguf> node tests/e2e/screenshots.mjs docs/img

import { execFileSync } from "node:child_process";
import { serveView } from "./checks.mjs";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./views.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const dest = resolve(root, process.argv[2] ?? "docs/img");
mkdirSync(dest, { recursive: true });
const bin = resolve(root, process.env.EPROF_BIN ?? "target/debug/eprof");
const model = process.env.EPROF_MODEL;
if (!model) throw new Error("EPROF_MODEL is not set (scripts/fetch-model.sh prints the path)");
const data = mkdtempSync(join(tmpdir(), "eprof-shots-"));
const eprof = (args) => execFileSync(bin, ["--data-dir", data, ...args], { encoding: "utf8" });

const trace = join(data, "smollm2.eprof");
eprof(["record", "Give me three tips for staying healthy.", "--model", model, "--depth", "deep",
  "--max-tokens", "32", "--idle-ms", "0", "--out", trace]);
// Zoom to the decode tokens, select tokens 8 to 15 (their times, as eprof show says).
const span = (from, to) => {
  const r = JSON.parse(eprof(["show", trace, "--from", from, "--to", to, "--json"]));
  return [r.from_ns, r.to_ns];
};
const [z0, z1] = span("#1", "#31");
const [r0, r1] = span("#8", "#15");

const { url, server } = await serveView(bin, data, trace);
const { browser, consoleErrors, newPage } = await launchChromium(process.env.CHROMIUM ?? "/usr/bin/chromium");
try {
  const page = await newPage("screenshots");
  await page.goto(`${url}#token=12&range=${r0}-${r1}&zoom=${z0}-${z1}`);
  await page.waitForSelector("body[data-loaded='1']");
  await page.waitForSelector("#range-cost");
  await page.setViewportSize({ width: 1366, height: 1300 });
  // A section scrolled to just below the sticky index, drawn, then captured.
  const shot = async (sel, name) => {
    await page.locator(sel).evaluate((e) => e.scrollIntoView({ block: "start" }));
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const clip = await page.locator(sel).boundingBox();
    await page.screenshot({ path: join(dest, name), clip });
    console.log(`${join(dest, name)}`);
  };
  await shot("#timeline", "viewer-timeline-zoomed.png");
  await shot("#power", "viewer-power-range.png");
  await page.fill("#search", "L5.down_proj");
  await page.locator("#search").press("Enter");
  await page.waitForFunction(() => document.querySelector("#search-result").textContent === "site L5.down_proj");
  await shot("#heatmap", "viewer-search-heatmap.png");
  const decode = await page.$eval("#icicle .ic-node[data-name='decode']", (n) => n.dataset.path);
  await page.locator(`#icicle .ic-node[data-path='${decode}'] rect`).click();
  await page.waitForFunction(() => document.querySelectorAll("#icicle .ic-crumbs .crumb").length === 2);
  await shot("#icicle", "viewer-icicle-decode.png");
  if (consoleErrors.length) throw new Error(`console errors: ${consoleErrors.join(" | ")}`);
} finally {
  await browser.close();
  server.kill();
}
