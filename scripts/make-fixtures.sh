#!/usr/bin/env bash
# Remakes tests/fixtures/tokenizers/*.json: llama.cpp's token ids, the chat template as
# Jinja2 renders it, and a greedy completion, for each real model (see
# scripts/fixtures/llamacpp_reference.py). Not part of CI: the fixtures are committed,
# and the tests compare against them.
set -euo pipefail
cd "$(dirname "$0")/.."
py="$(scripts/llama-cpp-env.sh)"
mkdir -p tests/fixtures/tokenizers
for name in smollm2 qwen2.5-coder-0.5b gemma3-270m; do
  model="$(scripts/fetch-model.sh "$name")"
  "$py" scripts/fixtures/llamacpp_reference.py "$model" "$(basename "$model")" \
    "tests/fixtures/tokenizers/$name.json"
  echo "tests/fixtures/tokenizers/$name.json"
done
