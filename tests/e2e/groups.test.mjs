// Groups of repeated runs in the viewer, in headless Chromium: `eprof bench` makes
// a group of two configurations (built-in model, synthetic source with seeded noise)
// and a second group of one; `eprof view GROUP --html` opens all its runs. The
// Repeated runs section must show every configuration's headline figures with an
// interval and a dot per run, phases and layers with error bars, and the comparison
// with verdicts whose numbers are `eprof compare --json`'s; two groups compare too;
// no console errors.
import { makeChecks } from "./checks.mjs";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { launchChromium } from "./views.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "target/e2e");
const bin = resolve(root, process.env.EPROF_BIN ?? "target/debug/eprof");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const dataDir = join(out, "groups-data");
rmSync(dataDir, { recursive: true, force: true });
mkdirSync(dataDir, { recursive: true });
for (const f of [bin, chromiumPath]) statSync(f); // throws if missing

const { check, eq, passed } = makeChecks("");
function eprof(args) {
  return execFileSync(bin, ["--data-dir", dataDir, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
}

const common = ["--model", "builtin:tiny-llama", "--power", "synthetic:noise=2,seed=3", "--max-tokens", "12",
  "--idle-ms", "0", "--warmup", "0", "--json"];
const a = JSON.parse(eprof(["bench", "Give me three tips.", "--depth", "off", "--depth", "module", "--repeat", "4", ...common]));
const b = JSON.parse(eprof(["bench", "Give me three tips.", "--depth", "module", "--repeat", "3", ...common]));
const groupA = a.configurations[0].group;
const groupB = b.configurations[0].group;
console.log(`groups ${groupA} (2 configurations x 4 runs) and ${groupB} (1 x 3)`);

const { browser, consoleErrors, newPage } = await launchChromium(chromiumPath);
const count = (page, sel) => page.locator(sel).count();
// Traces load one by one (in the viewer's worker): wait for every embedded one.
async function allLoaded(page) {
  const n = await page.locator("script.eprof-trace").count();
  await page.waitForSelector(`body[data-loaded='${n}']`, { timeout: 60000 });
  await page.waitForSelector("#groups .group-table");
}

// One group of two configurations.
const html = join(out, "group.html");
eprof(["view", groupA, "--html", html]);
let page = await newPage("group");
await page.goto(pathToFileURL(html).href);
await allLoaded(page);
check(await count(page, "#groups .group-table thead th") === 3, "one column per configuration");
// Five headline figures, each a forest plot: an interval line per configuration and a dot per run.
check(await count(page, "#groups svg.forest") === 5, "five headline figures drawn");
check(await count(page, "#groups svg.forest line.ci") === 10, "an interval per figure and configuration (10)");
check(await count(page, "#groups svg.forest circle.run-dot") === 40, "a dot per run per figure (5 x 8)");
// Error bars: four phases x two configurations; layers only where both have them (module depth).
check(await count(page, "#groups svg.phase-bars line.ci") === 8, "phase error bars (4 x 2)");
const layers = await count(page, "#groups svg.layer-bars rect.bar");
check(layers > 0, `layer bars with error bars (${layers})`);
check(await count(page, "#groups svg.layer-bars line.ci") === layers, "every layer bar has its whiskers");
// The comparison: its verdicts are eprof compare's.
const cli = JSON.parse(eprof(["compare", groupA, "--json"]));
const figs = cli.comparisons[0].figures;
const rows = await page.locator("#groups table.group-compare tbody tr").evaluateAll((trs) =>
  trs.map((tr) => [tr.querySelector("th").textContent, tr.querySelector("td.verdict").textContent]));
const names = { total_energy: "energy", j_per_generated_token: "J per generated token",
  decode_tokens_per_s: "decode tok/s", time_to_first_token: "time to first token" };
for (const [key, name] of Object.entries(names)) {
  const want = figs.find((f) => f.key === key).verdict.replaceAll("_", " ");
  const got = rows.find((r) => r[0] === name)?.[1];
  check(got === want, `${name}: verdict "${got}" == eprof compare's "${want}"`);
}
check(await count(page, "#groups td.verdict") >= 5, "a verdict per headline figure");
await page.close();

// Two groups: the second against the first, as `eprof compare A B` does.
const two = join(out, "two-groups.html");
eprof(["view", groupA, groupB, "--html", two]);
page = await newPage("two-groups");
await page.goto(pathToFileURL(two).href);
await allLoaded(page);
check(await count(page, "#groups .group-table thead th") === 4, "three configurations over two groups");
check(await count(page, "#groups h3.vs") === 2, "each compared with the first");
const vsText = await page.locator("#groups h3.vs").allTextContents();
check(vsText.some((t) => t.startsWith(`${groupB}/all vs ${groupA}/`)), `the second group against the first: ${vsText}`);
check(await count(page, "#groups td.verdict") >= 10, "verdicts for both comparisons");
await page.close();

await browser.close();
check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);
console.log(`\ngroups viewer test: ${passed()} checks passed`);
