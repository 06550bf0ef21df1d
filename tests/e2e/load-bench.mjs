// The viewer's load benchmark (viewer.test.mjs runs it on a 1,000-token and a
// 10,000-token deep trace): a trace opened through the file input of fresh pages,
// measured in the page. Printed, never asserted: timings on a shared machine are
// figures to read, not pass/fail conditions.
//
// Per page: load-to-rendered (file input to every view drawn, heatmap and drilldown
// included), the longest main-thread task during the load (PerformanceObserver of
// long tasks, which reports tasks over 50 ms), the worker's decode + summaries time
// (so MB/s of the wasm reader), and memory: the page's and the worker's wasm memory
// (it only grows, so its size after the load is its peak), the page's JS heap peak
// (sampled every 20 ms) and the high-water mark of the renderer processes' resident
// memory (VmHWM: everything the tab used, JS heaps of page and worker included).

import { readFileSync, readdirSync, statSync } from "node:fs";

// Installed before the page's own scripts: long tasks and the JS heap's peak.
const OBSERVE = () => {
  window.eprofLongTasks = [];
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) window.eprofLongTasks.push({ start: e.startTime, ms: e.duration });
  }).observe({ type: "longtask", buffered: true });
  window.eprofHeapPeak = 0;
  setInterval(() => {
    const m = performance.memory;
    if (m) window.eprofHeapPeak = Math.max(window.eprofHeapPeak, m.usedJSHeapSize);
  }, 20);
  // Frame intervals while `eprofFrames.on` (the slider drag).
  window.eprofFrames = { on: false, last: 0, gaps: [] };
  const tick = (t) => {
    const f = window.eprofFrames;
    if (f.on && f.last) f.gaps.push(t - f.last);
    f.last = t;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
};

// The largest VmHWM (peak resident memory) among Chromium's renderer processes, in
// bytes: the page under test is the only one open while it is read.
function rendererPeak() {
  let peak = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("--type=renderer")) continue;
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch { /* gone */ }
  }
  return peak;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (b) => (b / 1048576).toFixed(0);

// Open `tracePath` in `pages` fresh pages; with `drag`, then drag the token slider
// across every token and count the frames over 50 ms.
export async function benchLoad({ newPage, fileUrl, tracePath, label, pages = 3, drag = false, zoom = false, screenshot }) {
  const bytes = statSync(tracePath).size;
  const runs = [];
  for (let i = 0; i < pages; i++) {
    const p = await newPage(`bench ${label}`);
    await p.addInitScript(OBSERVE);
    await p.goto(fileUrl);
    await p.waitForSelector("#file-input");
    const t0 = await p.evaluate(() => performance.now());
    const wall0 = Date.now();
    await p.setInputFiles("#file-input", tracePath);
    await p.waitForSelector("body[data-loaded='1']", { timeout: 120000 });
    const wall = Date.now() - wall0;
    const r = await p.evaluate(async (t0) => {
      const longest = Math.max(0, ...window.eprofLongTasks.filter((t) => t.start >= t0).map((t) => t.ms));
      const worker = window.eprofWorker?.memory ? await window.eprofWorker.memory() : 0;
      return {
        ...window.eprofTimings,
        longest,
        pageWasm: wasm_bindgen.worker_memory_bytes(),
        workerWasm: worker,
        heapPeak: window.eprofHeapPeak,
      };
    }, t0);
    r.wall = wall;
    r.renderer = rendererPeak();
    if (drag) r.drag = await dragSlider(p);
    if (zoom) r.zoom = await zoomAcross(p);
    if (i === 0 && screenshot) await p.screenshot({ path: screenshot, fullPage: true });
    runs.push(r);
    await p.close();
  }
  const med = (k) => median(runs.map((r) => r[k]));
  const summary = {
    label, bytes, runs,
    wall: med("wall"), total: med("total_ms"), decode: med("decode_ms"), read: med("read_ms"),
    longest: Math.max(...runs.map((r) => r.longest)),
    mbps: bytes / 1048576 / (med("read_ms") / 1000),
    wasm: Math.max(...runs.map((r) => r.pageWasm + r.workerWasm)),
    heap: Math.max(...runs.map((r) => r.heapPeak)),
    renderer: Math.max(...runs.map((r) => r.renderer)),
  };
  console.log(`${label}: ${(bytes / 1048576).toFixed(1)} MiB`);
  console.log(`  load-to-rendered: median ${summary.wall} ms wall over ${pages} fresh pages (${runs.map((r) => r.wall).join(", ")}), in-page ${summary.total.toFixed(0)} ms`);
  console.log(`  in the worker: decode + summaries median ${summary.decode.toFixed(0)} ms, of which decoding ${summary.read.toFixed(0)} ms (${summary.mbps.toFixed(0)} MiB/s)`);
  console.log(`  longest main-thread task during the loads: ${summary.longest.toFixed(0)} ms (0: none over 50 ms)`);
  console.log(`  memory: wasm ${mib(summary.wasm)} MiB (page + worker), page JS heap peak ${mib(summary.heap)} MiB, renderer peak RSS ${mib(summary.renderer)} MiB`);
  if (drag) {
    const d = runs.map((r) => r.drag);
    console.log(`  slider dragged across all tokens: ${d.map((x) => `${x.frames} frames, ${x.over50} over 50 ms, longest ${x.longest.toFixed(0)} ms`).join("; ")}`);
  }
  if (zoom) {
    const z = runs.map((r) => r.zoom);
    console.log(`  zoomed in 12 wheel steps, panned across, zoomed out: ${z.map((x) => `${x.frames} frames, ${x.over50} over 50 ms, longest ${x.longest.toFixed(0)} ms`).join("; ")}`);
    summary.zoomOver50 = Math.max(...z.map((x) => x.over50));
  }
  return summary;
}

// Zoom into the middle of the power chart with the wheel (12 steps, 0.8x each), pan
// across the whole run with shift + wheel, zoom back out, as a hand would; frames are
// counted from the first wheel event until the last window is drawn.
async function zoomAcross(p) {
  await p.evaluate(() => document.querySelector("#power-box").scrollIntoView({ block: "center" }));
  const b = await p.locator("#power-box svg").boundingBox();
  await p.mouse.move(b.x + b.width * 0.52, b.y + b.height * 0.4);
  await p.evaluate(() => { window.eprofFrames.gaps = []; window.eprofFrames.last = 0; window.eprofFrames.on = true; });
  for (let i = 0; i < 12; i++) await p.mouse.wheel(0, -120);
  await p.keyboard.down("Shift");
  for (let i = 0; i < 30; i++) await p.mouse.wheel(0, -60);
  for (let i = 0; i < 60; i++) await p.mouse.wheel(0, 60);
  await p.keyboard.up("Shift");
  for (let i = 0; i < 14; i++) await p.mouse.wheel(0, 120);
  await p.waitForFunction(() => !location.hash.includes("zoom="), null, { timeout: 30000 });
  await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const gaps = await p.evaluate(() => { window.eprofFrames.on = false; return window.eprofFrames.gaps; });
  return { frames: gaps.length, over50: gaps.filter((g) => g > 50).length, longest: Math.max(0, ...gaps) };
}

// Drag the token slider from its first to its last position in small steps, as a
// hand would; frames are counted from the first move until the heatmap shows the
// last token.
async function dragSlider(p) {
  await p.evaluate(() => document.querySelector("#token-slider").scrollIntoView({ block: "center" }));
  const box = await p.locator("#token-slider").boundingBox();
  const y = box.y + box.height / 2;
  const last = await p.evaluate(() => Number(document.querySelector("#token-slider").max));
  await p.mouse.move(box.x + 2, y);
  await p.mouse.down();
  await p.evaluate(() => { window.eprofFrames.gaps = []; window.eprofFrames.last = 0; window.eprofFrames.on = true; });
  await p.mouse.move(box.x + box.width - 2, y, { steps: 150 });
  await p.mouse.up();
  await p.waitForFunction((last) => {
    const v = Number(document.querySelector("#token-slider").value);
    const token = document.querySelector("#token-label").textContent.split(":")[0];
    return v === last && document.querySelector("#heatmap svg")?.textContent.includes(token);
  }, last, { timeout: 30000 });
  // Let the last answer land and a frame draw it.
  await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const gaps = await p.evaluate(() => { window.eprofFrames.on = false; return window.eprofFrames.gaps; });
  return { frames: gaps.length, over50: gaps.filter((g) => g > 50).length, longest: Math.max(0, ...gaps) };
}
