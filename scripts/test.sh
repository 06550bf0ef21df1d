#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
# Installs what it needs, idempotently: the wasm32 target and the real model.
# Fails, never skips, when a required part cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain: wasm32 target"
rustup target add wasm32-unknown-unknown >/dev/null

step "real model (SmolLM2-135M-Instruct Q4_1)"
EPROF_TEST_MODEL="$(scripts/fetch-model.sh)"
export EPROF_TEST_MODEL
echo "$EPROF_TEST_MODEL"

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the trace reader builds for the browser"
cargo check --locked --target wasm32-unknown-unknown -p eprof-format

step "tests"
# The end-to-end tests in tests/ run the eprof binary itself.
cargo build --locked -p eprof
cargo test --workspace --locked
