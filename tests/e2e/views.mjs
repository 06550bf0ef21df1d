// What the Chromium tests (viewer, live) share: the browser, pages that collect
// console errors, and what the six views must draw for a trace.
import { chromium } from "playwright-core";

// Debian's chromium, headless, with nothing that reaches the network.
export async function launchChromium(executablePath) {
  const browser = await chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const consoleErrors = [];
  // A page whose console errors and uncaught exceptions land in `consoleErrors`.
  async function newPage(label) {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(`${label}: ${m.text()}`); });
    page.on("pageerror", (e) => consoleErrors.push(`${label}: ${e.message}`));
    return page;
  }
  return { browser, consoleErrors, newPage };
}

// What the six views must draw for a trace, from its `eprof show --json` summary:
// selector -> element count (firefox.test.mjs reads it from expected.json).
export function expectedCounts(s) {
  const phasesWithEnergy = s.phases.filter((p) => (p.energy?.joules ?? 0) > 0).length;
  return {
    "tl-phase": s.phases.length, "tl-sec": s.sections.length, "pw-band": s.phases.length,
    "hm-cell": s.layer_components.length, "tm-node": phasesWithEnergy,
    "sk-node[data-col='2'][data-layer]": s.layers.length, "sk-node[data-col='4']": s.components.length,
    "wf-tok": s.tokens.length,
  };
}
