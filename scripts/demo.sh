#!/usr/bin/env bash
# The main job, on a fresh machine: build eprof for this CPU, fetch the real model,
# profile one prompt at deep depth with the best power source this machine has, and
# leave things to look at in target/demo/:
#   demo.html          the viewer with the trace inside: open it in a browser (offline)
#   show.txt           the full summary (phases, tokens, layers x components, ops, metrics)
#   demo.eprof         the trace (open it with `eprof show`, send it to a colleague)
#   demo.chrome.json   the timeline for Perfetto or chrome://tracing
#   csv/               every table as CSV
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null
cargo xtask viewer            # one HTML file, embedded into the eprof binary below
cargo build --release --locked -p eprof
eprof=target/release/eprof
model="$("$eprof" model fetch --quiet smollm2)"   # checked, once; then left alone
out=target/demo
mkdir -p "$out"

"$eprof" record "Give me three tips for staying healthy." \
  --model "$model" --depth deep --max-tokens 48 --tag demo --out "$out/demo.eprof"
"$eprof" show "$out/demo.eprof" > "$out/show.txt"
"$eprof" view "$out/demo.eprof" --out "$out/demo.html"
"$eprof" export "$out/demo.eprof" --format chrome --out "$out/demo.chrome.json"
"$eprof" export "$out/demo.eprof" --format csv --out "$out/csv"
sed -n '1,40p' "$out/show.txt"
echo
echo "viewer:       $out/demo.html (open it in a browser; or: $eprof view $out/demo.eprof)"
echo "full summary: $out/show.txt"
echo "timeline:     $out/demo.chrome.json (Perfetto or chrome://tracing)"
echo "history:      $eprof ls"
echo "live:         $eprof serve  (start runs from the browser and watch them happen; run history)"
