#!/usr/bin/env bash
# llama.cpp through llama-cpp-python, pinned, built once into a cached virtual
# environment (several minutes on 2 cores; not part of CI). Prints the environment's
# python. Used by scripts/bench-engine.sh and scripts/make-fixtures.sh.
#
#   scripts/llama-cpp-env.sh          built for this CPU (-DGGML_NATIVE=ON: AVX-512,
#                                     VNNI and AMX where the CPU has them)
#   scripts/llama-cpp-env.sh avx2     AVX2 + FMA + F16C only, in its own environment:
#                                     llama.cpp as it runs on a CPU without VNNI, to
#                                     compare with eprof's EPROF_CPU_ISA=avx2 path
set -euo pipefail
isa="${1:-native}"
root="${XDG_CACHE_HOME:-$HOME/.cache}/eprof"
case "$isa" in
  native)
    venv="${EPROF_LLAMA_VENV:-$root/llama-cpp-venv}"
    cmake_args="-DGGML_NATIVE=ON" ;;
  avx2)
    venv="$root/llama-cpp-venv-avx2"
    cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
  *) echo "usage: $0 [native|avx2]" >&2; exit 2 ;;
esac
pin="llama-cpp-python==0.3.16"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pin" 2>/dev/null)" != "$pin $cmake_args" ]; then
  echo "building $pin ($isa) into $venv (once; several minutes on 2 cores)..." >&2
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  # No wheel cache: a wheel built with other CMAKE_ARGS would be reused.
  CMAKE_ARGS="$cmake_args" "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "$pin" >&2
  echo "$pin $cmake_args" > "$venv/.pin"
fi
echo "$venv/bin/python"
