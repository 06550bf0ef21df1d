#!/usr/bin/env bash
# Fuzz every input eprof reads from outside, SECONDS each (default 60):
#   decode        the .eprof trace reader (and the summary of what it decodes)
#   gguf          the GGUF loader: metadata, decoder configuration, tokenizer, tensors
#   request       a RecordRequest JSON body, parsed and checked as the server does
#   tokenizer     the byte-level and GGUF BPE tokenizers on arbitrary text and ids
#   powermetrics  the powermetrics plist parser
# Prints executions and crashes per target; exits 1 if any target crashed (the input
# is in fuzz/artifacts/TARGET/: make it a regression test). Not part of CI: it needs
# the nightly toolchain and cargo-fuzz, which it installs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
targets=(decode gguf request tokenizer powermetrics)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

# Seeds: real inputs from the repository.
mkdir -p fuzz/corpus/{decode,gguf,request,tokenizer,powermetrics}
cp -n formats/tests/golden/*.eprof fuzz/corpus/decode/ 2>/dev/null || true
cp -n tests/fixtures/powermetrics/* fuzz/corpus/powermetrics/ 2>/dev/null || true
printf '%s' '{"prompt":"Hello","max_tokens":4,"depth":"deep","power":"synthetic:w=10","probes":["activation"],"top_p":0.9}' >fuzz/corpus/request/seed.json
printf '%s' 'The quick brown fox, héllo wörld 🙂 <|begin_of_text|>' >fuzz/corpus/tokenizer/seed.txt

cargo +nightly fuzz build --fuzz-dir fuzz -O >/dev/null
status=0
printf '%-14s %14s %8s\n' target executions crashes
for t in "${targets[@]}"; do
  log="$(mktemp)"
  set +e
  cargo +nightly fuzz run --fuzz-dir fuzz -O "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=4096 >"$log" 2>&1
  rc=$?
  set -e
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=1
    status=1
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 >&2
  fi
  printf '%-14s %14s %8s\n' "$t" "${runs:-?}" "$crashes"
  rm -f "$log"
done
exit "$status"
