#!/usr/bin/env bash
# The GPU check: what eprof measures on an NVIDIA GPU, in one JSON.
#
#   scripts/gpu-check.sh build   # here, no GPU needed: a stripped CUDA build in .gpu-check/
#   scripts/gpu-check.sh run     # on the GPU machine: prints the JSON (and writes it
#                                # to $OUT/gpu-check.json when OUT is set)
#
# `build` makes a release binary with `--features cuda` for x86-64-v3 (AVX2: any
# x86 server CPU of the last decade; `target-cpu=native` would name this machine's CPU),
# strips it (the release binary with line tables is over 120 MB) and copies it to
# .gpu-check/eprof, which git ignores; carry `.gpu-check` to the GPU machine.
#
# `run` needs nothing but the binary, an NVIDIA driver, and CUDA 13 runtime libraries
# (cuBLAS, cuRAND, NVRTC, cudart: any CUDA 13 toolkit or PyTorch install has them; the
# script finds those of the `python3` on PATH). No model files: it synthesizes a
# Llama 3.2 1B of random weights (`eprof model synth`) and uses the built-in tiny model.
# It measures, each for off, module and deep depth: decode tok/s and J/token; the
# overhead of module and deep against off (interleaved rounds); the NVML energy
# counter's update period; and CUDA-against-CPU logits. Budget: about 6 minutes on an
# H200 (set ROUNDS and TOKENS to change it). A dry run of the script without a GPU:
# `DEVICE=cpu EPROF_BIN=target/release/eprof ROUNDS=1 TOKENS=4 scripts/gpu-check.sh run`.
set -euo pipefail
cd "$(dirname "$0")/.."

build() {
  cuda_env="$(scripts/cuda-env.sh)"
  eval "$cuda_env"
  export CARGO_TARGET_DIR="${EPROF_GPU_TARGET:-${XDG_CACHE_HOME:-$HOME/.cache}/eprof/target-gpu}"
  RUSTFLAGS="-C target-cpu=x86-64-v3" cargo build --locked --release -p eprof --features cuda
  mkdir -p .gpu-check
  strip -o .gpu-check/eprof "$CARGO_TARGET_DIR/release/eprof"
  # The binary links these by SONAME; the GPU machine must have them.
  objdump -p .gpu-check/eprof | awk '/NEEDED/ {print "  needs", $2}'
  # Stripped, it is still about 64 MB (candle's PTX for every kernel is text): xz
  # makes it about 10 MB, well inside what travels to the GPU machine.
  xz -T2 -6 -f .gpu-check/eprof
  ls -l .gpu-check/eprof.xz
}

run() {
  local rounds="${ROUNDS:-3}" tokens="${TOKENS:-64}" device="${DEVICE:-cuda}"
  local out="${OUT:-$(mktemp -d)}" work bin
  work="$(mktemp -d)"
  mkdir -p "$out"
  # Progress to a log that comes back even when the run is stopped at its limit.
  exec 2> >(tee "$out/gpu-check.log" >&2)
  bin="${EPROF_BIN:-$work/eprof}"
  if [ -z "${EPROF_BIN:-}" ]; then
    [ -f .gpu-check/eprof.xz ] || { echo "gpu-check: no .gpu-check/eprof.xz: run 'scripts/gpu-check.sh build' here and carry .gpu-check" >&2; exit 1; }
    xz -dc .gpu-check/eprof.xz >"$bin" 2>/dev/null \
      || python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' .gpu-check/eprof.xz >"$bin"
    chmod +x "$bin"
  fi
  # CUDA 13 runtime libraries from the Python environment (PyTorch's nvidia-* wheels).
  local libs
  libs="$(python3 - <<'EOF' 2>/dev/null || true
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = set()
for r in roots:
    for pat in ("nvidia/*/lib", "nvidia/cu13/lib", "nvidia/*/lib64"):
        for d in glob.glob(os.path.join(r, pat)):
            if glob.glob(os.path.join(d, "lib*.so*")):
                dirs.add(d)
print(":".join(sorted(dirs)))
EOF
)"
  export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}:/usr/local/cuda/lib64:/usr/local/nvidia/lib64"
  export EPROF_HOME="$work/data"
  local missing
  missing="$(ldd "$bin" | awk '/not found/ {print $1}' | tr '\n' ' ' || true)"
  [ -z "$missing" ] || { echo "gpu-check: the binary cannot find: $missing (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)" >&2; exit 1; }

  "$bin" --version >&2
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$work/gpu.txt" || true
  "$bin" doctor --json >"$work/doctor.json"

  echo "synthesizing llama-3.2-1b (q4_0)..." >&2
  "$bin" model synth --shape llama-3.2-1b --dtype q4_0 "$work/llama-3.2-1b.q4_0.gguf" >&2
  "$bin" model info --json "$work/llama-3.2-1b.q4_0.gguf" >"$work/info-1b.json"

  # A step that fails leaves its error in the JSON and the others still run: the
  # first run on a GPU is when the CUDA paths are first exercised.
  attempt() { # attempt OUT.json CMD...: CMD's stdout to OUT.json, or its error there
    local dest="$1"
    shift
    # Bounded: a hang on a device seen for the first time must not eat the lease.
    if ! timeout -k 5 "${STEP_TIMEOUT:-120}" "$@" >"$dest" 2>"$dest.err"; then
      python3 -c 'import json, sys; print(json.dumps({"error": open(sys.argv[1]).read()[-3000:]}))' "$dest.err" >"$dest"
      echo "gpu-check: failed: $*" >&2
      tail -5 "$dest.err" >&2
    fi
  }
  echo "CUDA against CPU logits..." >&2
  attempt "$work/logits-1b.json" "$bin" model check-device --device "$device" --tokens 8 --json "$work/llama-3.2-1b.q4_0.gguf"
  attempt "$work/logits-tiny.json" "$bin" model check-device --device "$device" --tokens 8 --json builtin:tiny-llama
  # The other adapters, with k-quants: Qwen2 (biases, tied head) and Gemma 3 (its
  # norms, sliding window; its 1152-wide rows fall back to q5_0).
  for shape in qwen2.5-0.5b gemma-3-1b; do
    attempt "$work/synth-$shape.txt" "$bin" model synth --shape "$shape" --dtype q4_k "$work/$shape.gguf"
    attempt "$work/logits-$shape.json" "$bin" model check-device --device "$device" --tokens 8 --json "$work/$shape.gguf"
  done

  local prompt="Explain, step by step, how a transformer decodes one token."
  for model in "$work/llama-3.2-1b.q4_0.gguf" builtin:tiny-llama; do
    local name
    name="$(basename "$model" | tr ':' '-')"
    "$bin" record --model "$model" --device "$device" --depth off --max-tokens 8 --no-index \
      --out "$work/warmup.eprof" "$prompt" >/dev/null 2>&1 || true
    for r in $(seq "$rounds"); do
      # Interleaved, the order rotating from round to round.
      local order=(off module deep)
      local k=$(( (r - 1) % 3 ))
      order=("${order[@]:$k}" "${order[@]:0:$k}")
      for depth in "${order[@]}"; do
        echo "$name round $r $depth" >&2
        attempt "$work/$name-$depth-$r.json" "$bin" record --model "$model" --device "$device" \
          --depth "$depth" --max-tokens "$tokens" --no-index --json \
          --out "$work/$name-$depth-$r.eprof" "$prompt"
      done
    done
  done

  python3 - "$work" "$rounds" "$out/gpu-check.json" "$device" <<'EOF'
import json, os, statistics, sys
work, rounds, dest, device = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(p):
    try:
        with open(os.path.join(work, p)) as f:
            return json.load(f)
    except Exception as e:
        return {"error": f"{p}: {e}"}
res = {"date": os.popen("date -u +%Y-%m-%dT%H:%MZ").read().strip(), "device": device}
try:
    gpu = open(os.path.join(work, "gpu.txt")).read().strip().split(", ")
    res["gpu"], res["driver"], res["memory"] = gpu[0], gpu[1], gpu[2]
except Exception as e:
    res["gpu"] = f"nvidia-smi: {e}"
doctor = load("doctor.json")
res["auto_power"] = doctor.get("auto_power")
res["power_sources"] = [p for p in doctor.get("power_sources", []) if p.get("name") in ("nvml", "rapl", "nvml+rapl")]
import re
period = [re.search(r"updates every ([0-9.]+) ms \(measured over (\d+) changes\)", p.get("detail", "")) for p in res["power_sources"]]
period = [m for m in period if m]
res["nvml_counter_period_ms"] = float(period[0].group(1)) if period else None
res["logits"] = {"llama-3.2-1b": load("logits-1b.json"), "tiny": load("logits-tiny.json"),
                 "qwen2.5-0.5b": load("logits-qwen2.5-0.5b.json"), "gemma-3-1b": load("logits-gemma-3-1b.json")}
info = load("info-1b.json")
res["llama-3.2-1b_parameters"] = info.get("identity", {}).get("parameters")
def summary(name):
    runs = {d: [load(f"{name}-{d}-{r}.json") for r in range(1, rounds + 1)] for d in ("off", "module", "deep")}
    out = {}
    for d, rs in runs.items():
        ok = [r["summary"] for r in rs if r.get("summary", {}).get("decode_tokens_per_s")]
        out[d] = {
            "decode_tok_per_s": [round(s["decode_tokens_per_s"], 1) for s in ok],
            "ttft_ms": [round((s.get("time_to_first_token_ns") or 0) / 1e6, 2) for s in ok],
            "j_per_token": [s.get("decode_j_per_token") for s in ok],
            "generated_tokens": [s.get("generated_tokens") for s in ok],
            "source": [s.get("source") for s in ok][:1],
            "labels": [s.get("labels") for s in ok][:1],
            "errors": [r.get("error") for r in rs if "summary" not in r],
        }
    for d in ("module", "deep"):
        diffs = [m / o - 1 for m, o in zip(out[d]["decode_tok_per_s"], out["off"]["decode_tok_per_s"]) if o]
        out[d]["vs_off"] = (f"{statistics.mean(diffs) * 100:+.1f}%" if diffs else None)
    return out
res["llama-3.2-1b"] = summary("llama-3.2-1b.q4_0.gguf")
res["tiny"] = summary("builtin-tiny-llama")
text = json.dumps(res, indent=1)
print(text)
with open(dest, "w") as f:
    f.write(text + "\n")
EOF
}

case "${1:-}" in
  build) build ;;
  run) run ;;
  *) echo "usage: scripts/gpu-check.sh build|run" >&2; exit 2 ;;
esac
