#!/usr/bin/env bash
# llama.cpp through llama-cpp-python, pinned, built once into a cached virtual
# environment (several minutes on 2 cores; not part of CI). Prints the environment's
# python. Used by scripts/bench-engine.sh and scripts/make-fixtures.sh.
set -euo pipefail
venv="${EPROF_LLAMA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/eprof/llama-cpp-venv}"
pin="llama-cpp-python==0.3.16"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pin" 2>/dev/null)" != "$pin" ]; then
  echo "building $pin into $venv (once; several minutes on 2 cores)..." >&2
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  CMAKE_ARGS="-DGGML_NATIVE=ON" "$venv/bin/pip" install --quiet --disable-pip-version-check "$pin" >&2
  echo "$pin" > "$venv/.pin"
fi
echo "$venv/bin/python"
