// The viewer in Firefox: opens the `eprof view --html` file that viewer.test.mjs wrote
// (target/e2e/shared.html) in headless Firefox ESR, driven over WebDriver BiDi (built
// into Firefox; no driver binary, no browser download), and checks every view's
// element count against target/e2e/expected.json, the token slider, zoom (wheel), a
// dragged range's energy against `eprof show --from --to`, search, the icicle's sums,
// a link that restores token, range and zoom, and the console.
// Run after viewer.test.mjs by scripts/test.sh:
//
//   node --experimental-websocket tests/e2e/firefox.test.mjs

import { makeChecks } from "./checks.mjs";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "target/e2e");
const firefox = process.env.FIREFOX ?? "/usr/bin/firefox-esr";
const expected = JSON.parse(readFileSync(join(out, "expected.json"), "utf8"));
const page = pathToFileURL(join(out, "shared.html")).href;
// The trace inside shared.html, for eprof show --from --to.
const tracePath = join(out, "real.eprof");
const bin = resolve(root, process.env.EPROF_BIN ?? "target/debug/eprof");

const { check, eq, passed } = makeChecks(" (firefox)");

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
  // Zoom with the wheel, select a range with a drag (events as the mouse sends them),
  // and hold the range's energy against eprof show --from --to.
  const zoom = await ev(`(async () => {
    const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    const plot = (sel) => { const e = document.querySelector(sel); return [Number(e.dataset.t0), Number(e.dataset.t1)]; };
    const at = (box, frac) => {
      const svg = document.querySelector(box + " svg");
      svg.scrollIntoView({ block: "center" });
      const r = svg.getBoundingClientRect();
      return { el: svg.querySelector("rect.pw-plot, rect.tr-plot"), x: r.left + r.width * (60 + frac * 920) / 1000, y: r.top + r.height * 0.3 };
    };
    const before = plot("#power-box .pw-plot");
    let p = at("#power-box", 0.5);
    for (let i = 0; i < 3; i++) p.el.dispatchEvent(new WheelEvent("wheel", { deltaY: -200, clientX: p.x, clientY: p.y, bubbles: true, cancelable: true }));
    await frame();
    const after = plot("#power-box .pw-plot"), track = plot("#track-box .tr-plot");
    p = at("#power-box", 0.5);
    p.el.dispatchEvent(new WheelEvent("wheel", { deltaY: 150, shiftKey: true, clientX: p.x, clientY: p.y, bubbles: true, cancelable: true }));
    await frame();
    const panned = plot("#power-box .pw-plot");
    const a = at("#track-box", 0.2), b = at("#track-box", 0.6);
    const mouse = (type, q) => q.el.dispatchEvent(new MouseEvent(type, { clientX: q.x, clientY: q.y, button: 0, bubbles: true, cancelable: true }));
    mouse("mousedown", a); mouse("mousemove", { ...b, x: (a.x + b.x) / 2 }); mouse("mousemove", b); mouse("mouseup", b);
    await frame();
    const r = document.querySelector("#range-cost")?.dataset ?? {};
    return JSON.stringify({ before, after, track, panned, from: r.from, to: r.to, joules: Number(r.joules) });
  })()`).then(JSON.parse);
  check(zoom.after[1] - zoom.after[0] < (zoom.before[1] - zoom.before[0]) * 0.6, `the wheel zooms the power chart: ${zoom.before} -> ${zoom.after}`);
  check(zoom.track.join() === zoom.after.join(), "the time track zoomed with it");
  check(zoom.panned[0] > zoom.after[0] && Math.abs((zoom.panned[1] - zoom.panned[0]) - (zoom.after[1] - zoom.after[0])) <= 2, `shift + wheel pans: ${zoom.after} -> ${zoom.panned}`);
  const cli = JSON.parse(execFileSync(bin, ["show", tracePath, "--from", zoom.from, "--to", zoom.to, "--json"], { encoding: "utf8" }));
  check(Math.abs(zoom.joules - cli.total.joules) <= 1e-9 * cli.total.joules, `a dragged range ${zoom.from}..${zoom.to}: ${zoom.joules} J, eprof show --from --to: ${cli.total.joules} J`);
  const found = await ev(`(async () => {
    const s = document.getElementById("search");
    s.value = "L1.q_proj";
    s.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    await new Promise((r) => setTimeout(r, 100));
    const root = document.querySelector("#icicle .ic-node[data-path='']");
    const kids = [...document.querySelectorAll("#icicle .ic-node")].filter((n) => /^\\d+$/.test(n.dataset.path));
    return JSON.stringify({ result: document.getElementById("search-result").textContent, layer: document.getElementById("drill-layer").value,
      root: Number(root.dataset.v), kids: kids.reduce((a, n) => a + Number(n.dataset.v), 0) });
  })()`).then(JSON.parse);
  check(found.result === "site L1.q_proj" && found.layer === "1", `search finds a site (${found.result}, drilldown layer ${found.layer})`);
  check(Math.abs(found.root - found.kids) <= 1e-9 * found.root, `the icicle's phases sum to its run (${found.kids} vs ${found.root})`);
  // A link restores token, range and zoom.
  const [z0, z1] = zoom.before;
  const link = [Math.round(z0 + (z1 - z0) * 0.25), Math.round(z0 + (z1 - z0) * 0.75)];
  await send("browsingContext.navigate", { context, url: `${page}#token=2&range=${zoom.from}-${zoom.to}&zoom=${link.join("-")}`, wait: "complete" });
  await send("browsingContext.reload", { context, wait: "complete" });
  let restored = null;
  for (let i = 0; i < 150 && !restored; i++) {
    restored = await ev(`(() => {
      const r = document.querySelector("#range-cost"), w = document.querySelector("#power-box .pw-plot");
      if (!r || !w || document.body.getAttribute("data-loaded") !== "1") return null;
      return JSON.stringify({ range: [r.dataset.from, r.dataset.to].join("-"), zoom: [w.dataset.t0, w.dataset.t1].join("-"), token: document.getElementById("token-label").textContent });
    })()`).then((x) => (x ? JSON.parse(x) : null));
    if (!restored) await new Promise((r) => setTimeout(r, 200));
  }
  check(restored && restored.range === `${zoom.from}-${zoom.to}` && restored.zoom === link.join("-") && restored.token.startsWith("token 2"),
    `a link restores token, range and zoom: ${JSON.stringify(restored)}`);
  const shot = await send("browsingContext.captureScreenshot", { context });
  writeFileSync(join(out, "07-firefox.png"), Buffer.from(shot.data, "base64"));
  check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);
  ws.close();
} finally {
  ff.kill();
}
console.log(`viewer in firefox: ${passed()} checks passed`);
