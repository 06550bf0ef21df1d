#!/usr/bin/env bash
# The CPU engine against llama.cpp, side by side in one run (issue: CPU engine):
# llama.cpp through llama-cpp-python (pinned, built once into a cached virtual
# environment; not part of CI), then eprof's overhead benchmark on the same file with
# the same thread count: candle-transformers' reference, eprof with candle's kernels
# and with its own, at depth off / module / deep. Prints decode tok/s, prefill ms and
# each ratio to llama.cpp. With EPROF_CPU_ISA=avx2 (eprof's AVX2 path without VNNI),
# llama.cpp is its AVX2-only build too (scripts/llama-cpp-env.sh avx2: no VNNI,
# AVX-512 or AMX), so both run what a CPU without VNNI runs.
#
#   scripts/bench-engine.sh [MODEL.gguf] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-$(scripts/fetch-model.sh)}"
rounds="${2:-5}"
threads="$(nproc)"
tokens=64
prompt="Give me three tips for staying healthy."
llama_isa=native
if [ "${EPROF_CPU_ISA:-}" = avx2 ]; then llama_isa=avx2; fi
py="$(scripts/llama-cpp-env.sh "$llama_isa")"
pin="llama-cpp-python $("$py" -c "import llama_cpp; print(llama_cpp.__version__)") ($llama_isa build)"
out="$(mktemp)"
echo "llama.cpp ($pin), $threads threads, $rounds rounds..." >&2
"$py" scripts/bench/llama_bench.py "$model" "$threads" "$tokens" "$rounds" "$prompt" > "$out"
echo "eprof, $threads threads, $rounds rounds..." >&2
# The same thread count for candle's pools and eprof's kernels (they share them).
RAYON_NUM_THREADS="$threads" CANDLE_NUM_THREADS="$threads" \
BENCH_ROUNDS="$rounds" BENCH_TOKENS="$tokens" EPROF_TEST_MODEL="$model" BENCH_LLAMA_CPP="$out" \
  cargo bench -p eprof-record --bench overhead
rm -f "$out"
