"""Training throughput and MFU through the Trainer, printed as JSON (no assertions).

    python tests/bench/bench_train.py [--steps 12] [--warmup 3] [--threads N] [--compile]

Shape fixed by the core issue: 4 layers, 4 heads, C=256, T=256, V=4096, batch 8. The peak
is measured in the same run (a large square matmul in fp32 and in bf16), so MFU compares the
model with what this machine's matmul actually delivers right now (the CPU is shared).
`mfu`: FLOPs per token = 6·N_matmul + 12·L·T·C (PaLM, appendix B; attention counted unmasked);
`mfu_core_stats`: core.stats.flops_per_token (causal attention: the keys each query sees), the
convention of bench_core's `mfu`. Timing excludes warm-up steps and evaluation (modded-nanogpt
style). The Trainer keeps freed memory for reuse on CPU (core/cpualloc.py), as in training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from core.config import preset  # noqa: E402
from core.model import GPT  # noqa: E402
from core.stats import flops_per_token as stats_flops_per_token  # noqa: E402
from core.train_config import TrainConfig  # noqa: E402
from core.trainer import Trainer  # noqa: E402
from tests.bench.machine import describe_cpu  # noqa: E402


def peak_gflops(dtype: torch.dtype, n: int = 1024, reps: int = 20) -> float:
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 * reps / best / 1e9


def flops_per_token(cfg) -> float:
    L, C, T, V = cfg.n_layers, cfg.d_model, cfg.context_length, cfg.vocab_size
    n_matmul = L * (4 * C * C + 2 * C * cfg.ff_dim) + V * C  # qkv+proj, mlp, lm_head
    return 6 * n_matmul + 12 * L * T * C


def bench(dtype: str, steps: int, warmup: int, compile_: bool) -> dict:
    cfg = preset("small", n_layers=4, n_heads=4, d_model=256, context_length=256, vocab_size=4096)
    torch.manual_seed(0)
    model = GPT(cfg)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, 200_000)
    tcfg = TrainConfig(
        max_steps=steps + warmup,
        batch_size=8,
        dtype=dtype,
        device="cpu",
        eval_every=0,
        ckpt_every=0,
        telemetry_every=0,
        compile=compile_,
    )
    trainer = Trainer(model, ids[:180_000], ids[180_000:], tcfg)
    for _ in range(warmup):
        trainer.train_step()
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    dt = time.perf_counter() - t
    tok_s = steps * trainer.tokens_per_step / dt
    return {
        "tokens_per_s": round(tok_s, 1),
        "model_gflops": round(tok_s * flops_per_token(cfg) / 1e9, 1),
        "stats_gflops": round(tok_s * stats_flops_per_token(cfg)["train_step"] / 1e9, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {
        "shape": "L4 H4 C256 T256 V4096 B8",
        "threads": torch.get_num_threads(),
        "compile": args.compile,
        "cpu": describe_cpu(),
    }
    # the CPU is shared: the peak is the best of a measurement before and after the model runs
    peak = {"fp32": peak_gflops(torch.float32), "bf16": peak_gflops(torch.bfloat16)}
    for dtype in ("fp32", "bf16"):
        out[dtype] = bench(dtype, args.steps, args.warmup, args.compile)
    peak = {k: max(v, peak_gflops(getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[k])))
            for k, v in peak.items()}  # fmt: skip
    out["peak_gflops"] = {k: round(v, 1) for k, v in peak.items()}
    for dtype in ("fp32", "bf16"):
        out[dtype]["mfu"] = round(out[dtype]["model_gflops"] / peak[dtype], 3)
        out[dtype]["mfu_core_stats"] = round(out[dtype].pop("stats_gflops") / peak[dtype], 3)
    bf = out["bf16"]
    out["goal"] = {"bf16_mfu": 0.65, "met_palm": bf["mfu"] >= 0.65,
                   "met_core_stats": bf["mfu_core_stats"] >= 0.65}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
