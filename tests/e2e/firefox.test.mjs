// The viewer in Firefox: opens the `eprof view --html` file that viewer.test.mjs wrote
// (target/e2e/shared.html) in headless Firefox ESR, driven over WebDriver BiDi (built
// into Firefox; no driver binary, no browser download), and checks every view's
// element count against target/e2e/expected.json, the token slider, and the console.
// Run after viewer.test.mjs by scripts/test.sh:
//
//   node --experimental-websocket tests/e2e/firefox.test.mjs

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "target/e2e");
const firefox = process.env.FIREFOX ?? "/usr/bin/firefox-esr";
const expected = JSON.parse(readFileSync(join(out, "expected.json"), "utf8"));
const page = pathToFileURL(join(out, "shared.html")).href;

let checks = 0;
function check(cond, what) {
  if (!cond) throw new Error(`FAILED (firefox): ${what}`);
  checks++;
  console.log(`  ok  ${what}`);
}

const profile = mkdtempSync(join(tmpdir(), "eprof-ff-"));
const ff = spawn(firefox, ["--headless", "--no-remote", "-profile", profile, "--remote-debugging-port", "0", "--window-size=1366,900", "about:blank"], { stdio: ["ignore", "ignore", "pipe"] });
let stderr = "";
const wsUrl = await new Promise((res, rej) => {
  ff.stderr.on("data", (d) => {
    stderr += d;
    const m = stderr.match(/WebDriver BiDi listening on (ws:\/\/\S+)/);
    if (m) res(m[1]);
  });
  ff.on("exit", (c) => rej(new Error(`firefox exited with ${c}: ${stderr}`)));
  setTimeout(() => rej(new Error(`firefox did not start its BiDi server: ${stderr}`)), 30000);
});
try {
  const ws = new WebSocket(`${wsUrl.replace(/\/$/, "")}/session`);
  await new Promise((r, j) => { ws.addEventListener("open", r); ws.addEventListener("error", j); });
  let id = 0;
  const pending = new Map();
  const consoleErrors = [];
  ws.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    if (m.id && pending.has(m.id)) {
      pending.get(m.id)(m);
      pending.delete(m.id);
    } else if (m.method === "log.entryAdded" && m.params.level === "error") {
      consoleErrors.push(m.params.text);
    }
  });
  const send = (method, params) => new Promise((res, rej) => {
    const i = ++id;
    pending.set(i, (m) => (m.error ? rej(new Error(`${method}: ${m.error} ${m.message}`)) : res(m.result)));
    ws.send(JSON.stringify({ id: i, method, params }));
  });
  const session = await send("session.new", { capabilities: {} });
  console.log(`firefox ${session.capabilities.browserVersion}`);
  await send("session.subscribe", { events: ["log.entryAdded"] });
  const context = (await send("browsingContext.getTree", {})).contexts[0].context;
  await send("browsingContext.navigate", { context, url: page, wait: "complete" });
  const ev = async (expression) => {
    const r = await send("script.evaluate", { expression, target: { context }, awaitPromise: true });
    if (r.type === "exception") throw new Error(`${expression}: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value;
  };
  let loaded = null;
  for (let i = 0; i < 150 && !loaded; i++) {
    loaded = await ev("document.body.getAttribute('data-loaded')");
    if (!loaded) await new Promise((r) => setTimeout(r, 200));
  }
  check(loaded === "1", `the --html file opens with its trace loaded (fatal: "${await ev("document.getElementById('fatal')?.textContent ?? document.getElementById('boot')?.textContent")}")`);
  check(await ev("window.eprofWorker.ready") === true, "the trace was decoded in the worker");
  for (const [sel, n] of Object.entries(expected)) {
    const got = await ev(`document.querySelectorAll(".${sel}").length`);
    check(got === n, `${sel}: ${got} == ${n}`);
  }
  const changed = await ev(`(async () => {
    const before = document.querySelector("#heatmap .chart-box").innerHTML;
    const s = document.getElementById("token-slider");
    s.value = "2";
    s.dispatchEvent(new Event("input", { bubbles: true }));
    // The token's heatmap comes from the worker: wait for it (bounded).
    for (let i = 0; i < 100; i++) {
      if (document.querySelector("#heatmap svg")?.textContent.includes("token 2")) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return document.querySelector("#heatmap .chart-box").innerHTML !== before
      && document.getElementById("token-label").textContent.startsWith("token 2");
  })()`);
  check(changed === true, "moving the token slider changes the heatmap");
  const shot = await send("browsingContext.captureScreenshot", { context });
  writeFileSync(join(out, "07-firefox.png"), Buffer.from(shot.data, "base64"));
  check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);
  ws.close();
} finally {
  ff.kill();
}
console.log(`viewer in firefox: ${checks} checks passed`);
