// What every browser test shares: a checker that counts what passed and stops at the
// first failure, and `eprof view` served on 127.0.0.1 for a trace.
import { spawn } from "node:child_process";

// `check(cond, what)` throws `FAILED<tag>: what` when `cond` is false, else prints
// `ok  what`; `eq(a, b, what)` checks a === b; `passed()` is how many passed.
export function makeChecks(tag = "") {
  let n = 0;
  const check = (cond, what) => {
    if (!cond) throw new Error(`FAILED${tag}: ${what}`);
    n++;
    console.log(`  ok  ${what}`);
  };
  const eq = (actual, expected, what) => check(actual === expected, `${what}: ${actual} == ${expected}`);
  return { check, eq, passed: () => n };
}

// `eprof view TRACE --no-open` on a loopback port: { url, server } once it printed its
// address (15 s at most); kill `server` when done.
export async function serveView(bin, dataDir, trace) {
  const server = spawn(bin, ["--data-dir", dataDir, "view", trace, "--no-open"], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((res, rej) => {
    let buf = "";
    server.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/http:\/\/127\.0\.0\.1:\d+\/\S*/);
      if (m) res(m[0]);
    });
    server.on("exit", (c) => rej(new Error(`eprof view exited with ${c}`)));
    setTimeout(() => rej(new Error("eprof view printed no URL")), 15000);
  });
  return { url, server };
}
