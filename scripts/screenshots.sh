#!/usr/bin/env bash
# The screenshots in docs/img/ (docs/viewer.md shows them), made again from a real
# run: build eprof and the viewer, fetch SmolLM2-135M, record one prompt at deep depth,
# open the viewer in Debian's chromium at a link that selects a token, a range and a
# zoom, search a site, zoom the icicle into decode, and capture each view.
#   scripts/screenshots.sh            (needs chromium and node; installs the npm package)
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null
cargo xtask viewer
cargo build --locked -p eprof
command -v chromium >/dev/null || { echo "chromium is required (Debian: apt-get install chromium)" >&2; exit 1; }
command -v node >/dev/null || { echo "node is required (Debian: apt-get install nodejs npm)" >&2; exit 1; }
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
model="$(EPROF_BIN=target/debug/eprof scripts/fetch-model.sh)"
EPROF_BIN=target/debug/eprof EPROF_MODEL="$model" node tests/e2e/screenshots.mjs docs/img
