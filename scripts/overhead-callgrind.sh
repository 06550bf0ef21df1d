#!/usr/bin/env bash
# What each recording depth costs per decoded token on SmolLM2, in instructions and
# simulated cache misses: exact counts (valgrind's callgrind, one thread), so two depths
# compare to the instruction where the overhead benchmark's timings move by +-1% from
# one run to the next on a shared VM. Two runs per configuration (4 and 12 generated
# tokens, same prompt) and their difference divided by the extra tokens: the counts of
# one decode step, without loading, prefill or the end of the run. Rows: the whole
# generation loop (`pipeline::generate`: the model's steps and the session's flushes;
# not the summary read back from the trace after the run), and inside it the
# activation statistics' pass (`Moments::of`) and the session's flushes.
#
# The caches simulated: the machine's L1 (as valgrind reads it) and, as the last level,
# a 1 MiB L2 (`--LL`), which the weights streamed by each projection evict; a miss there
# is served by L3 or memory. Instructions are not time: the benchmark remains the
# measure of speed (cargo bench -p eprof-record --bench overhead), this says where the
# work is.
#
# Needs valgrind (apt-get install -y valgrind); not part of the test suite. valgrind
# runs no AVX-512, so eprof is built for x86-64-v3 (AVX2, FMA) in target/callgrind.
#
# Usage: scripts/overhead-callgrind.sh [CONFIG ...]
#   CONFIG: off | module (with the activation probe, its default) | spans (module
#   depth, --no-probes) | deep   [default: off spans module]
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || {
    echo "valgrind is missing: apt-get install -y valgrind" >&2
    exit 1
}
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(off spans module)
for c in "${configs[@]}"; do
    case "$c" in off | module | spans | deep) ;; *)
        echo "unknown configuration $c (off, module, spans, deep)" >&2
        exit 2
        ;;
    esac
done

target=target/callgrind
RUSTFLAGS="-C target-cpu=x86-64-v3" cargo build --quiet --release -p eprof --target-dir "$target"
eprof="$target/release/eprof"
model=$("$eprof" model fetch --quiet smollm2)
# CALLGRIND_OUT=DIR keeps the profiles (callgrind_annotate reads them) and reuses
# the ones already there.
if [ -n "${CALLGRIND_OUT:-}" ]; then
    out=$CALLGRIND_OUT
    mkdir -p "$out"
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

# Every configuration and length at once: valgrind runs one thread per process.
for c in "${configs[@]}"; do
    case "$c" in
    off) flags=(--depth off) ;;
    spans) flags=(--depth module --no-probes) ;;
    *) flags=(--depth "$c") ;;
    esac
    for n in 4 12; do
        [ -s "$out/$c.$n.cg" ] && [ -s "$out/$c.$n.json" ] && continue
        CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=1 valgrind --tool=callgrind --cache-sim=yes \
            --LL=1048576,16,64 --callgrind-out-file="$out/$c.$n.cg" \
            "$eprof" record "Give me three tips for staying healthy." --model "$model" \
            "${flags[@]}" --power synthetic --max-tokens "$n" --idle-ms 0 --no-index \
            --threads 1 -o "$out/$c.$n.eprof" -q --json >"$out/$c.$n.json" 2>"$out/$c.$n.log" &
    done
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
if [ "$failed" -ne 0 ]; then
    tail -n 20 "$out"/*.log >&2
    echo "a callgrind run failed" >&2
    exit 1
fi

# The inclusive counts of one function (the first, largest line naming it), or the
# totals; nothing if no line names it.
counts() { # file pattern -> "Ir I1mr D1mr ILmr DLmr"
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        sed -E 's/\( *[0-9.]+%\)//g; s/,//g' |
        awk -v p="$2" '!done && index($0, p) && $1 ~ /^[0-9]+$/ {
            for (i = 1; i <= 9; i++) if ($i == ".") $i = 0
            print $1, $4, $5, $7, $8
            done = 1
        }'
}
tokens() { # the run's generated tokens, from its JSON summary
    sed -n 's/.*"generated_tokens": *\([0-9]*\).*/\1/p' "$1" | head -n 1
}

printf 'Per decode token, SmolLM2-135M Q4_1, one thread, x86-64-v3 build (callgrind)\n'
printf '| configuration | what | instructions | L1i misses | L1d misses | L2 i-misses | L2 d-misses |\n'
printf '|---|---|---|---|---|---|---|\n'
for c in "${configs[@]}"; do
    a=$(tokens "$out/$c.12.json")
    b=$(tokens "$out/$c.4.json")
    [ -n "$a" ] && [ -n "$b" ] || {
        echo "$c: no generated_tokens in the runs' summaries ($out)" >&2
        exit 1
    }
    [ "$a" -gt "$b" ] || {
        echo "$c: $a and $b generated tokens, no difference to divide by" >&2
        exit 1
    }
    for what in "pipeline::generate" "Moments::of" "Session::flush"; do
        x=$(counts "$out/$c.12.cg" "$what")
        y=$(counts "$out/$c.4.cg" "$what")
        [ -n "$x" ] || continue
        [ -n "$y" ] || y="0 0 0 0 0"
        paste -d' ' <(tr ' ' '\n' <<<"$x") <(tr ' ' '\n' <<<"$y") |
            awk -v c="$c" -v w="$what" -v n=$((a - b)) -v base="${off_ir:-}" '
                { d[NR] = ($1 - $2) / n }
                END {
                    vs = ""
                    if (w == "pipeline::generate" && base != "" && c != "off")
                        vs = sprintf(" (%+.2f%% vs off)", (d[1] - base) / base * 100)
                    printf "| %s | %s | %.0f%s | %.0f | %.0f | %.0f | %.0f |\n", c, w, d[1], vs, d[2], d[3], d[4], d[5]
                    if (w == "pipeline::generate" && c == "off") print d[1] > "/dev/stderr"
                }' 2>"$out/.off_ir"
        if [ "$c" = off ] && [ "$what" = "pipeline::generate" ]; then
            off_ir=$(cat "$out/.off_ir")
        fi
    done
done
