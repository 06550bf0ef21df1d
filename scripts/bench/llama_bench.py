"""Decode tok/s and prefill ms of llama.cpp (through llama-cpp-python) on a GGUF file,
for scripts/bench-engine.sh: the same prompt tokens and token count as eprof's
benchmark, greedy, N threads. Prints one JSON object per round."""

import json
import sys
import time

import llama_cpp
from llama_cpp import Llama

path, threads, tokens, rounds, prompt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
llm = Llama(model_path=path, n_ctx=512, n_threads=threads, n_threads_batch=threads, n_batch=512,
            verbose=False, logits_all=False)
ids = llm.tokenize(prompt.encode(), add_bos=True)
for r in range(rounds + 1):  # one warm-up round, not reported
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    t1 = time.perf_counter()
    n = 0
    for _ in range(tokens):
        tok = llm.sample(temp=0.0)
        llm.eval([tok])
        n += 1
    t2 = time.perf_counter()
    if r > 0:
        print(json.dumps({"engine": "llama.cpp", "version": llama_cpp.__version__,
                          "prefill_ms": (t1 - t0) * 1e3, "decode_tok_s": n / (t2 - t1), "prompt_tokens": len(ids)}), flush=True)
