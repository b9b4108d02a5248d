"""Benchmark: numpy LPU executor tokens/s on a small random Llama, against a plain torch CPU forward.

Run:  .venv/bin/python benchmarks/lpu_executor.py [--layers 8 --hidden 512 --new-tokens 32 --chips 1,8]

Builds a random ``LlamaForCausalLM`` (~32 M parameters at the defaults) in
this process, saves it as safetensors to a temporary folder, and times
greedy generation of the same prompt three ways, batch 1:

* torch: transformers' forward in fp32 with its KV cache (the baseline);
* reference: :class:`twinfer.lpu.executor.ReferenceModel` (numpy kernels, no compiler);
* executor: the compiled prefill + decode programs run by
  :class:`~twinfer.lpu.executor.ProgramExecutor`, for each chip count given.

Weights are rounded to bf16 values and the executor stores them as bf16,
so all three compute the same function; the script checks the greedy
tokens agree. Each contender runs ``--repeat`` times (default 3) and the
fastest run is reported, which tames a shared machine's noise. Compile
time is reported apart from executor time. The
executor's weights are widened once in a warm-up run (as torch's are
already fp32 in memory). Threads: ``--threads`` (default 1) for both torch
and numpy's BLAS, set before either is imported; on a shared 2-core machine
OpenBLAS with 2 threads under load ran a [32x512]x[512x1408] matmul ~15x
slower than with 1 thread, which would make the comparison meaningless.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _make_model(folder: Path, args: argparse.Namespace):
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        vocab_size=args.vocab,
        max_position_embeddings=4096,
        initializer_range=0.3 / (args.hidden / 64) ** 0.5,  # keeps logits spread at any width
    )
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    model.save_pretrained(folder, safe_serialization=True)
    return model


def _torch_generate(model, prompt: list[int], new_tokens: int) -> tuple[list[int], float]:
    import torch

    with torch.no_grad():
        t0 = time.perf_counter()
        out = model(input_ids=torch.tensor([prompt]), use_cache=True)
        past, toks = out.past_key_values, []
        nxt = out.logits[:, -1].argmax(-1)
        toks.append(int(nxt))
        for _ in range(new_tokens - 1):
            out = model(input_ids=nxt[:, None], past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1)
            toks.append(int(nxt))
        return toks, time.perf_counter() - t0


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--intermediate", type=int, default=1408)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--chips", default="1,8", help="comma-separated chip counts for the executor")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/torch threads for every contender")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per contender (best is kept)")
    return ap.parse_args()


def main() -> None:
    args = _parse()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy/torch load their BLAS
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)

    from twinfer.lpu.chip import make_chip
    from twinfer.lpu.executor import (
        ProgramExecutor,
        ReferenceModel,
        compile_generation,
        execute_generation,
        greedy_generate,
    )
    from twinfer.lpu.weights import WeightStore, checkpoint_spec
    from twinfer.models.ops import Precision

    rng = np.random.default_rng(0)
    prompt = rng.integers(0, args.vocab, args.prompt_len).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _make_model(folder, args)
        params = sum(p.numel() for p in model.parameters())
        print(
            f"model: random Llama, {params / 1e6:.1f} M params ({args.layers} layers, hidden {args.hidden}, "
            f"{args.heads} heads / {args.kv_heads} KV heads, vocab {args.vocab}); "
            f"prompt {args.prompt_len} tokens, {args.new_tokens} new tokens, batch 1"
        )
        print(f"threads: torch {torch.get_num_threads()}, os.cpu_count() {os.cpu_count()}")

        _torch_generate(model, prompt, 2)  # warm-up
        runs = [_torch_generate(model, prompt, args.new_tokens) for _ in range(args.repeat)]
        ref_tokens, torch_s = runs[0][0], min(r[1] for r in runs)
        torch_tps = args.new_tokens / torch_s
        print(f"torch CPU fp32 forward:  {torch_tps:8.1f} tokens/s  ({torch_s:.3f} s)")

        spec = checkpoint_spec(folder)
        store = WeightStore.open(folder, spec)
        ref = ReferenceModel(spec, store, dtype="bf16")
        ref.forward(np.array([prompt[:2]]))  # warm-up: reads and rounds the weights
        ref_s = float("inf")
        for _ in range(args.repeat):
            ref.cache.entries.clear()
            t0 = time.perf_counter()
            gen = greedy_generate(
                lambda ids: ref.forward(ids)[:, -1], np.array([prompt]), args.new_tokens
            )
            ref_s = min(ref_s, time.perf_counter() - t0)
        same = gen.tokens[0].tolist() == ref_tokens
        print(
            f"numpy reference forward: {args.new_tokens / ref_s:8.1f} tokens/s  ({ref_s:.3f} s)  "
            f"ratio to torch {args.new_tokens / ref_s / torch_tps:.2f}  tokens match torch: {same}"
        )

        chip = make_chip("groq-tsp-v1")
        prec = Precision(weights="bf16", activations="fp16", kv_cache="fp16")
        for chips in (int(c) for c in args.chips.split(",")):
            compiled = compile_generation(
                spec, chip, chips=chips, batch=1, prompt_len=args.prompt_len,
                max_new_tokens=args.new_tokens, precision=prec,
            )  # fmt: skip
            ex = ProgramExecutor(store)
            execute_generation(
                compiled, store, np.array([prompt]), executor=ex
            )  # warm-up: widen weights
            run_s = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                gen = execute_generation(compiled, store, np.array([prompt]), executor=ex)
                run_s = min(run_s, time.perf_counter() - t0)
            tps = args.new_tokens / run_s
            same = gen.tokens[0].tolist() == ref_tokens
            instrs = (
                len(compiled.decodes[-1].instrs)
                if compiled.decodes
                else len(compiled.prefill.instrs)
            )
            print(
                f"executor, {chips} chip(s) (tp {compiled.plan.tp} x {len(compiled.plan.stages)} stages, "
                f"{instrs} instrs/decode step): {tps:8.1f} tokens/s  ({run_s:.3f} s)  "
                f"ratio to torch {tps / torch_tps:.2f}  tokens match torch: {same}  "
                f"[compile {compiled.compile_s:.2f} s for {len(compiled.programs)} programs]"
            )


if __name__ == "__main__":
    main()
