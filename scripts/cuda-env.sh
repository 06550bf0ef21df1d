#!/usr/bin/env bash
# Assembles the CUDA 13.0 compiler from NVIDIA's Python packages, on a machine with no
# GPU and no CUDA install, and prints the environment a `--features cuda` build needs:
#
#   eval "$(scripts/cuda-env.sh)"
#   cargo build --release -p eprof --features cuda
#
# Idempotent: the toolkit lives in $EPROF_CUDA_HOME (default ~/.cache/eprof/cuda-13.0)
# and is made once. The wheels are pinned by version and hash.
#
# What the build needs, and where it comes from:
# - nvcc, cicc, ptxas, the CUDA headers and cudart: the wheels below, unzipped into one
#   folder (they all install under nvidia/cu13/).
# - Link-time libraries. candle 0.11 builds cudarc with `dynamic-linking`, so the binary
#   is linked against libcuda (the driver), nvrtc, curand, cuBLAS and cuBLASLt. At run
#   time they come from the GPU machine (the driver, and the CUDA 13 runtime libraries
#   any CUDA 13 PyTorch or toolkit install has). At link time a stub with the right
#   SONAME and the exported names is all the linker needs, which is what CUDA's own
#   `lib64/stubs/libcuda.so` is. The package index has no driver stub, and cuBLAS's
#   wheel is half a gigabyte, so this script makes stubs: one C function per name that
#   cudarc loads (read from cudarc's own bindings), compiled into lib/stubs/ with the
#   real library's SONAME. Nothing in a stub is ever called: the dynamic loader binds
#   the real library by SONAME when the program starts.
# - CUDA_COMPUTE_CAP: the GPU generation candle's kernels are compiled for. 90 (Hopper,
#   the H100/H200) unless set; 80 for an A100, 89 for an L4/RTX 40xx. The PTX is
#   JIT-compiled by the driver, so the driver must be CUDA 13.0 or newer (580+); with an
#   older driver, build with the nvcc that matches it (see docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."

root="${EPROF_CUDA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/eprof/cuda-13.0}"
cu="$root/nvidia/cu13"

if [ ! -x "$cu/bin/nvcc" ] || [ ! -f "$root/.complete" ]; then
  mkdir -p "$root"
  wheels="$(mktemp -d)"
  trap 'rm -rf "$wheels"' EXIT
  cat >"$wheels/requirements.txt" <<'EOF'
nvidia-cuda-nvcc==13.0.88 --hash=sha256:56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03
nvidia-nvvm==13.0.88 --hash=sha256:c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0
nvidia-cuda-crt==13.0.88 --hash=sha256:2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cccl==13.0.85 --hash=sha256:e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649
EOF
  python3 -m pip download -q --no-deps --require-hashes --only-binary=:all: \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
    -r "$wheels/requirements.txt" -d "$wheels" >&2
  for w in "$wheels"/*.whl; do
    python3 -m zipfile -e "$w" "$root" >&2
  done
  chmod +x "$cu"/bin/* "$cu"/nvvm/bin/* 2>/dev/null || true
  rm -f "$root/.complete"
fi

stubs="$cu/lib/stubs"
if [ ! -f "$root/.complete" ]; then
  # cudarc's bindings, at the version Cargo.lock pins: every `load("name")` is a name
  # the binary may import.
  cargo fetch --locked >&2
  ver="$(awk '/^name = "cudarc"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)"
  [ -n "$ver" ] || { echo "cuda-env: cudarc is not in Cargo.lock" >&2; exit 1; }
  src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$ver" 2>/dev/null | head -1)"
  [ -d "$src" ] || { echo "cuda-env: cudarc $ver's source is not in cargo's registry" >&2; exit 1; }
  mkdir -p "$stubs"
  stub() { # stub SONAME FILE BINDINGS
    local c="$stubs/$2.c"
    grep -oh 'load::<_F>("[A-Za-z0-9_]*")' "$src/src/$3/sys/mod.rs" \
      | sed 's/.*("\(.*\)")/void \1(void) {}/' | sort -u >"$c"
    [ -s "$c" ] || { echo "cuda-env: no names in cudarc's $3 bindings" >&2; exit 1; }
    cc -shared -fPIC -o "$stubs/$2.so" -Wl,-soname,"$1" "$c"
    rm -f "$c"
  }
  stub libcuda.so.1 libcuda driver
  stub libnvrtc.so.13 libnvrtc nvrtc
  stub libcurand.so.10 libcurand curand
  stub libcublas.so.13 libcublas cublas
  stub libcublasLt.so.13 libcublasLt cublaslt
  # cudart is real (the runtime wheel's); the linker looks for the unversioned name.
  ln -sf libcudart.so.13 "$cu/lib/libcudart.so"
  "$cu/bin/nvcc" --version >&2
  touch "$root/.complete"
fi

cat <<EOF
export CUDA_ROOT="$cu"
export CUDA_PATH="$cu"
export PATH="$cu/bin:\$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
EOF
