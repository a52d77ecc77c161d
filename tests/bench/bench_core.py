"""Core benchmarks; prints one JSON object. Run by hand: `python tests/bench/bench_core.py`.

Fixed config: 4 layers, 4 heads, C=256, T=256, V=4096, batch 8, AdamW. Reports tokens/s of a full
training step (forward, backward, AdamW) in fp32 and under bf16 autocast, ours and a nanoGPT-style
reference measured in turn in every round (`vs_reference`: the median of ours / reference over
rounds, each pair back to back), with MFU against a matmul peak measured in the same rounds:
`mfu` counts FLOPs with core.stats (causal attention: the keys each query sees), `mfu_palm` with
6N + 12·L·T·C (PaLM/nanoGPT, attention unmasked), for our model and the reference alike;
forward latency for 256 tokens at batch 1 without and with every probe; generation tokens/s
(200 new tokens, batch 1, 1 thread) with and without the KV cache, next to the decoder's
torch-only path and a plain reference KV-cache loop in the same run. Options: `--compile` also
measures torch.compile'd steps (and their compile time), `--quick` fewer repeats, `--thp` huge
pages for torch's CPU tensors, `--no-keep-memory` glibc malloc untuned (the default tunes it as
the Trainer does), `--clock cpu --threads 1` for a busy machine; see --help.
No assertions: this reports figures, it does not judge them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from core.config import preset  # noqa: E402
from core.cpualloc import keep_freed_memory  # noqa: E402
from core.model import GPT  # noqa: E402
from core.probes import capture  # noqa: E402
from core.sampling import generate  # noqa: E402
from core.stats import flops_per_token  # noqa: E402
from tests.bench.machine import describe_cpu  # noqa: E402

B, T = 8, 256
# the clock: wall time, or this process's CPU time (robust on a shared, oversubscribed machine
# when running on one thread: time spent descheduled is not counted); set by --clock
now = time.perf_counter


class RefGPT(torch.nn.Module):
    """A nanoGPT-style baseline of the same shape (fused c_attn, SDPA, F.cross_entropy on the
    fp32 logits), written here so the comparison runs on the same machine at the same time."""

    def __init__(self, cfg):
        super().__init__()
        nn, C = torch.nn, cfg.d_model
        self.cfg = cfg
        self.wte, self.wpe = nn.Embedding(cfg.vocab_size, C), nn.Embedding(cfg.context_length, C)
        self.h = nn.ModuleList(
            nn.ModuleDict({"ln_1": nn.LayerNorm(C), "c_attn": nn.Linear(C, 3 * C),
                           "c_proj": nn.Linear(C, C), "ln_2": nn.LayerNorm(C),
                           "c_fc": nn.Linear(C, 4 * C), "mlp_proj": nn.Linear(4 * C, C)})
            for _ in range(cfg.n_layers)
        )  # fmt: skip
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx, targets):
        Bx, Tx = idx.shape
        H, C = self.cfg.n_heads, self.cfg.d_model
        x = self.wte(idx) + self.wpe(torch.arange(Tx, device=idx.device))
        for blk in self.h:
            q, k, v = blk["c_attn"](blk["ln_1"](x)).split(C, dim=2)
            q, k, v = (t.view(Bx, Tx, H, C // H).transpose(1, 2) for t in (q, k, v))
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + blk["c_proj"](y.transpose(1, 2).contiguous().view(Bx, Tx, C))
            h = torch.nn.functional.gelu(blk["c_fc"](blk["ln_2"](x)), approximate="tanh")
            x = x + blk["mlp_proj"](h)
        logits = self.lm_head(self.ln_f(x))
        loss = torch.nn.functional.cross_entropy(
            logits.view(-1, logits.size(-1)).float(), targets.view(-1)
        )
        return logits, loss


def palm_flops_per_token(cfg, seq_len: int) -> float:
    """The PaLM / nanoGPT convention (PaLM appendix B; nanoGPT's estimate_mfu): 6·N + 12·L·T·C
    with N the matmul weights (qkv, proj, MLP, LM head) and attention counted unmasked (all T
    keys), i.e. more FLOPs than core.stats counts for causal attention; reported as
    `mfu_palm` for our model and the reference alike, next to `mfu` (core.stats)."""
    L, C, V = cfg.n_layers, cfg.d_model, cfg.vocab_size
    n_matmul = L * (4 * C * C + 2 * C * cfg.ff_dim) + V * C
    return 6 * n_matmul + 12 * L * seq_len * C


def matmul_peak(dtype, n=1024, reps=20) -> float:
    """Best GFLOP/s of an n×n×n matmul in this dtype over `reps` runs."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = now()
        a @ b
        best = min(best, now() - t)
    return 2 * n**3 / best / 1e9


def train_rate(model, opt, batches, steps, autocast: bool, step_fn=None) -> list[float]:
    """Tokens/s of each of `steps` full training steps (after the caller's warm-up).

    Our GPT is called as core.trainer.Trainer calls it, without logits (fused LM head + loss);
    the reference computes its full logits, as nanoGPT's forward does with targets."""
    rates = []
    fwd = model if step_fn is None else step_fn  # (a compiled module has no truth value)
    kw = {} if isinstance(model, RefGPT) else {"return_logits": False}
    for i in range(steps):
        x, y = batches[i % len(batches)]
        t = now()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            _, loss = fwd(x, y, **kw)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        rates.append(B * T / (now() - t))
    return rates


def _setup(cfg, autocast: bool, compiled: bool = False, reference: bool = False) -> dict:
    """A model, its AdamW, 4 fixed batches and its step function, warmed up (and compiled)."""
    torch.manual_seed(0)
    model = (RefGPT(cfg) if reference else GPT(cfg)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=True)
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randint(0, cfg.vocab_size, (B, T), generator=g),
         torch.randint(0, cfg.vocab_size, (B, T), generator=g))
        for _ in range(4)
    ]  # fmt: skip
    setup = dict(model=model, opt=opt, batches=batches, autocast=autocast, step_fn=None,
                 dtype=torch.bfloat16 if autocast else torch.float32, rates=[])  # fmt: skip
    if compiled:
        t = time.perf_counter()
        setup["step_fn"] = torch.compile(model)
        train_rate(model, opt, batches, 2, autocast, setup["step_fn"])  # compiles fwd and bwd
        setup["compile_s"] = time.perf_counter() - t  # wall time, whatever the clock
    train_rate(model, opt, batches, 3, autocast, setup["step_fn"])  # warm-up
    return setup


def bench_training(cfg, setups: dict[str, dict], rounds: int, steps: int) -> dict[str, dict]:
    """Every setup measured in every round, one after another, each after a peak measurement
    in its dtype: time-varying load on a shared machine hits all of them alike, and each
    setup's MFU is against the best peak of its dtype over the whole run."""
    peaks: dict[torch.dtype, list[float]] = {}
    for _ in range(rounds):
        for s in setups.values():
            peaks.setdefault(s["dtype"], []).append(matmul_peak(s["dtype"]))
            rate = train_rate(
                s["model"], s["opt"], s["batches"], steps, s["autocast"], s["step_fn"]
            )
            s["rates"].append(statistics.median(rate))
    for dtype, ps in peaks.items():
        ps.append(matmul_peak(dtype))
    flops = flops_per_token(cfg, T)["train_step"]
    out = {}
    for name, s in setups.items():
        best_rate, peak = max(s["rates"]), max(peaks[s["dtype"]])
        out[name] = {
            "tokens_per_s": round(best_rate),
            "tokens_per_s_median": round(statistics.median(s["rates"])),
            "peak_gflops": round(peak, 1),
            "achieved_gflops": round(best_rate * flops / 1e9, 1),
            "mfu": round(best_rate * flops / (peak * 1e9), 3),
            "mfu_palm": round(best_rate * palm_flops_per_token(cfg, T) / (peak * 1e9), 3),
        }
        if "compile_s" in s:
            out[name]["compile_s"] = round(s["compile_s"], 1)
    return out


def vs_reference(ours: dict, ref: dict) -> float:
    """Median over rounds of ours / reference tokens/s, each pair measured back to back."""
    return round(statistics.median(a / b for a, b in zip(ours["rates"], ref["rates"])), 3)


def bench_forward(cfg, reps: int) -> dict:
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (1, T))

    def plain():
        with torch.inference_mode():
            model(ids)

    def probes():
        capture(model, ids)

    plain_s, probe_s = [], []
    for _ in range(3):
        plain()
        probes()
    for _ in range(reps):  # alternate so both see the same machine
        t = now()
        plain()
        plain_s.append(now() - t)
        t = now()
        probes()
        probe_s.append(now() - t)
    p, q = min(plain_s), min(probe_s)
    return {"plain_ms": round(p * 1e3, 2), "all_probes_ms": round(q * 1e3, 2),
            "ratio": round(q / p, 2)}  # fmt: skip


def reference_generate(model, prompt, n, seed=0):
    """A typical KV-cache loop (cache grown with torch.cat, modules called as usual,
    torch.multinomial on the softmax): the baseline our decoder is compared with, same run."""
    g = torch.Generator().manual_seed(seed)
    H, D = model.config.n_heads, model.config.head_dim
    caches = [None] * len(model.blocks)
    ids = list(prompt)
    with torch.inference_mode():
        x_ids, start = torch.tensor([ids]), 0
        for _ in range(n):
            Tn = x_ids.shape[1]
            x = model.tok_emb(x_ids) + model.pos_emb.weight[start : start + Tn]
            for i, blk in enumerate(model.blocks):
                q, k, v = blk.attn.qkv(blk.ln1(x)).view(1, Tn, 3, H, D).permute(2, 0, 3, 1, 4)
                if caches[i] is not None:
                    k = torch.cat([caches[i][0], k], dim=2)
                    v = torch.cat([caches[i][1], v], dim=2)
                caches[i] = (k, v)
                z = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=Tn > 1)
                x = x + blk.attn.proj(z.transpose(1, 2).reshape(1, Tn, -1))
                x = x + blk.mlp(blk.ln2(x))
            logits = model.lm_head(model.ln_f(x[:, -1]))
            nxt = int(torch.multinomial(torch.softmax(logits[0], -1), 1, generator=g))
            ids.append(nxt)
            start += Tn
            x_ids = torch.tensor([[nxt]])
    return ids


def bench_generation(cfg, reps: int) -> dict:
    """Tokens/s of generate() (KV cache), of its torch-only decode path (what runs when numpy's
    BLAS cannot be limited to torch's threads), of the reference loop, and without a cache.
    The three cached variants are interleaved within each repeat so machine noise hits them
    alike; each figure is the best repeat, each ratio the median of the per-repeat ratios."""
    from core import kvcache

    torch.manual_seed(0)
    model = GPT(cfg).eval()
    prompt = [1, 2, 3, 4]
    blas_on = kvcache._numpy_blas_on

    def ours(n, numpy_blas=True):
        kvcache._numpy_blas_on = blas_on if numpy_blas else (lambda threads: False)
        try:
            return generate(model, prompt, n, seed=0).ids
        finally:
            kvcache._numpy_blas_on = blas_on

    runs = {
        "kv_cache": ours,
        "kv_cache_torch_path": lambda n: ours(n, numpy_blas=False),
        "reference_kv_cache": lambda n: reference_generate(model, prompt, n),
    }
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn(20)  # warm-up
    for _ in range(reps):
        for name, fn in runs.items():
            t = now()
            fn(200)
            rates[name].append(200 / (now() - t))
    out = {f"{k}_tokens_per_s": round(max(v)) for k, v in rates.items()}
    for k in ("kv_cache_torch_path", "reference_kv_cache"):
        ratio = statistics.median(a / b for a, b in zip(rates["kv_cache"], rates[k]))
        out["speedup_vs_" + k.replace("_kv_cache", "")] = round(ratio, 2)
    out["same_ids_both_decode_paths"] = ours(200) == ours(200, numpy_blas=False)
    generate(model, prompt, 20, seed=0, use_cache=False)
    best = 0.0
    for _ in range(max(1, reps // 3)):
        t = now()
        generate(model, prompt, 200, seed=0, use_cache=False)
        best = max(best, 200 / (now() - t))
    out["no_cache_tokens_per_s"] = round(best)
    out["goal_tokens_per_s"] = 860
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile'd steps")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument(
        "--thp",
        action="store_true",
        help="THP_MEM_ALLOC_ENABLE=1: torch backs CPU tensors of 2 MB and more with transparent "
        "huge pages (an allocator setting, off by default in torch; the model is unchanged). "
        "Measured 6-13%% faster bf16 steps here; compare a run with and without it",
    )
    ap.add_argument(
        "--no-keep-memory",
        action="store_true",
        help="leave glibc malloc as it is (by default the run keeps freed memory for reuse, as "
        "core.trainer.Trainer does on CPU: core/cpualloc.py)",
    )
    ap.add_argument("--only", choices=["train", "forward", "generate"], default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu = process CPU time; use with --threads 1 on a busy machine",
    )
    args = ap.parse_args(argv)
    if args.thp:  # read by torch's CPU allocator on its first large allocation, i.e. from here
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    kept = False if args.no_keep_memory else keep_freed_memory()
    global now
    now = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = preset("small")
    rounds, steps = (2, 3) if args.quick else (4, 5)
    threads = torch.get_num_threads()
    res: dict = {"config": "4L/4H/C256/T256/V4096/B8", "torch": torch.__version__,
                 "threads": threads, "clock": args.clock, "cpu_count": os.cpu_count(),
                 "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE") == "1",
                 "keep_freed_memory": kept,
                 "load_avg_1m": round(os.getloadavg()[0], 2), "cpu": describe_cpu()}  # fmt: skip
    if args.only in (None, "train"):
        setups = {
            "train_fp32": _setup(cfg, False),
            "train_bf16": _setup(cfg, True),
            "reference_nanogpt_style_fp32": _setup(cfg, False, reference=True),
            "reference_nanogpt_style_bf16": _setup(cfg, True, reference=True),
        }
        if args.compile:
            setups["train_fp32_compiled"] = _setup(cfg, False, compiled=True)
            setups["train_bf16_compiled"] = _setup(cfg, True, compiled=True)
        res.update(bench_training(cfg, setups, rounds, steps))
        for dt in ("fp32", "bf16"):
            ref = setups[f"reference_nanogpt_style_{dt}"]
            res[f"train_{dt}"]["vs_reference"] = vs_reference(setups[f"train_{dt}"], ref)
    if args.only in (None, "forward"):
        res["forward_b1_t256"] = bench_forward(cfg, 10 if args.quick else 30)
    if args.only in (None, "generate"):
        torch.set_num_threads(1)
        res["generate_200_b1_1thread"] = bench_generation(cfg, 3 if args.quick else 7)
        torch.set_num_threads(threads)
    res["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    try:  # evidence for --thp: how much of this process sits in huge pages now
        with open("/proc/self/smaps_rollup") as f:
            huge = [line.split()[1] for line in f if line.startswith("AnonHugePages")]
        res["anon_huge_pages_kb_end"] = int(huge[0]) if huge else None
    except OSError:
        pass
    json.dump(res, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
