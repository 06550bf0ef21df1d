#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
# Installs what it needs, idempotently: the wasm32 and aarch64 targets (with qemu for
# the NEON kernels' tests), the CUDA 13 compiler (scripts/cuda-env.sh), the macOS
# target for the Metal check, the real models, Debian's
# chromium and firefox-esr, the browser tests' npm packages, and a Python virtual
# environment with DuckDB and prometheus_client. Fails, never skips, when a required
# part cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain: wasm32 target; aarch64 target, cross linker and qemu for the NEON kernels; aarch64-apple-darwin for the Metal check"
rustup target add wasm32-unknown-unknown aarch64-unknown-linux-gnu aarch64-apple-darwin >/dev/null
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
qemu-aarch64 --version | head -1

step "real models (SmolLM2-135M-Instruct Q4_1; Qwen2.5-Coder-0.5B-Instruct, mostly Q5_0; Gemma 3 270M Q4_K_M)"
EPROF_TEST_MODEL="$(scripts/fetch-model.sh)"
EPROF_TEST_QWEN2="$(scripts/fetch-model.sh qwen2.5-coder-0.5b)"
EPROF_TEST_GEMMA3="$(scripts/fetch-model.sh gemma3-270m)"
export EPROF_TEST_MODEL EPROF_TEST_QWEN2 EPROF_TEST_GEMMA3
echo "$EPROF_TEST_MODEL"
echo "$EPROF_TEST_QWEN2"
echo "$EPROF_TEST_GEMMA3"

step "browsers: chromium, firefox-esr, playwright-core"
missing=""
command -v chromium >/dev/null || missing="$missing chromium"
command -v firefox-esr >/dev/null || missing="$missing firefox-esr"
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi
chromium --version
firefox-esr --version
command -v node >/dev/null || { echo "node is required for the browser test (Debian: apt-get install nodejs npm)" >&2; exit 1; }
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)

step "python: DuckDB and prometheus_client (the dataset and /metrics tests' readers)"
PY="$(scripts/py-env.sh)"
"$PY" -c 'import duckdb, prometheus_client; print("duckdb", duckdb.__version__)'

step "format"
cargo fmt --all -- --check

step "structure: no file over 700 lines, no function over 150, no import circle (scripts/structure.py)"
python3 scripts/structure.py

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "CUDA: lint the --features cuda build (candle's CUDA kernels compiled by nvcc from NVIDIA's Python packages)"
# Its own target folder, kept between runs on this machine (a cold one compiles
# candle's CUDA kernels with nvcc: 20 minutes on 2 cores; a warm one, seconds).
# `cargo clippy` runs every build script, nvcc's too, and type-checks the CUDA code
# paths; linking needs no GPU either (`scripts/gpu-check.sh build` links and strips
# the binary the GPU machine runs).
(
  cuda_env="$(scripts/cuda-env.sh)"
  eval "$cuda_env"
  CARGO_TARGET_DIR="${EPROF_CUDA_TARGET:-${XDG_CACHE_HOME:-$HOME/.cache}/eprof/target-cuda}" \
    cargo clippy --locked -p eprof --features cuda -- -D warnings
)

step "Metal: lint the decoder, power sources and probes with --features metal for macOS (aarch64-apple-darwin)"
# Not the whole binary: the run index's bundled SQLite is C, compiled for the target
# by its C compiler against the macOS SDK, which no Linux machine has (the SDK ships
# with Xcode only). Everything with Metal code in it is checked.
CARGO_TARGET_DIR="${EPROF_METAL_TARGET:-${XDG_CACHE_HOME:-$HOME/.cache}/eprof/target-metal}" \
RUSTFLAGS="-C target-cpu=apple-m1" \
  cargo clippy --locked --target aarch64-apple-darwin \
    -p eprof-models -p eprof-power -p eprof-probes --features eprof-models/metal -- -D warnings

step "the viewer: lint for wasm32, build one HTML file"
cargo clippy --locked --target wasm32-unknown-unknown -p eprof-viewer -- -D warnings
cargo xtask viewer

step "tests"
# The end-to-end tests in tests/ run the eprof binary itself (it embeds the viewer
# built above).
cargo build --locked -p eprof
cargo test --workspace --locked

step "CPU kernels on aarch64 (NEON), under qemu"
# A generic CPU for the cross build: .cargo/config.toml's target-cpu=native names this
# machine's x86 CPU. One test at a time, so that the line the grep below looks for is
# not interleaved with another test's output.
neon_log="$(mktemp)"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
RUSTFLAGS="-C target-cpu=generic" \
  cargo test --locked -p eprof-kernels --target aarch64-unknown-linux-gnu -- --nocapture --test-threads=1 2>&1 \
  | tee "$neon_log"
grep "best implementation: neon" "$neon_log" >/dev/null \
  || { echo "the aarch64 tests did not run the NEON kernels" >&2; exit 1; }
rm -f "$neon_log"

step "viewer in a real browser (and its load benchmark)"
EPROF_BIN=target/debug/eprof EPROF_MODEL="$EPROF_TEST_MODEL" node tests/e2e/viewer.test.mjs
step "viewer in a real browser on a Gemma 3 trace (its 16 components per layer; big traces and the benchmark ran above)"
EPROF_BIN=target/debug/eprof EPROF_MODEL="$EPROF_TEST_GEMMA3" node tests/e2e/viewer.test.mjs --views-only

step "viewer: zoom and pan, a range's cost against eprof show --from --to, icicle, search, links"
EPROF_BIN=target/debug/eprof EPROF_MODEL="$EPROF_TEST_MODEL" node tests/e2e/zoom.test.mjs

step "live dashboard and run history on eprof serve, in a real browser"
EPROF_BIN=target/debug/eprof EPROF_MODEL="$EPROF_TEST_MODEL" node tests/e2e/live.test.mjs

step "groups of repeated runs (eprof bench) in the viewer: intervals, error bars, verdicts"
EPROF_BIN=target/debug/eprof node tests/e2e/groups.test.mjs

step "viewer in firefox"
node --experimental-websocket --no-warnings tests/e2e/firefox.test.mjs

step "Parquet dataset read by DuckDB; /metrics parsed by prometheus_client"
EPROF_BIN=target/debug/eprof EPROF_MODEL="$EPROF_TEST_MODEL" "$PY" tests/py/test_dataset.py
EPROF_BIN=target/debug/eprof "$PY" tests/py/test_metrics.py
