"""The Trainer's speed internals: fused AdamW, the fused LM head + loss, reused freed memory.
Behaviour only (no timings): what each one must not change, and that each one is in effect."""

import sys

import pytest
import torch

from core.trainer import Trainer
from tests.trainutil import tiny_cfg, tiny_data, tiny_model


def test_trainer_uses_fused_adamw_and_never_asks_for_logits(monkeypatch):
    tok, tr, va = tiny_data()
    trainer = Trainer(tiny_model(tok.vocab_size), tr, va, tiny_cfg(eval_every=0), log=False)
    assert all(g["fused"] for g in trainer.optimizer.param_groups)
    calls = []
    forward = trainer.model.forward

    def spy(*args, **kw):
        calls.append(kw.get("return_logits", True))
        return forward(*args, **kw)

    monkeypatch.setattr(trainer.model, "forward", spy)
    trainer.train_step()
    trainer.evaluate()
    assert calls and not any(calls)  # neither training nor evaluation holds B·T·V logits


def test_fused_step_matches_the_unfused_computation():
    """One bf16-autocast step: the Trainer's fused head + loss gives the loss and gradients of
    the plain logits + F.cross_entropy path."""
    torch.manual_seed(0)
    a, b = tiny_model(300), tiny_model(300)
    ids = torch.randint(0, 300, (4, 33))
    x, y = ids[:, :-1], ids[:, 1:]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, fused = a(x, y, return_logits=False)
        logits, _ = b(x)
        plain = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    fused.backward()
    plain.backward()
    assert abs(fused.item() - plain.item()) < 1e-4
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        tol = 2e-2 * q.grad.abs().max().item() + 1e-6
        assert (p.grad - q.grad).abs().max().item() <= tol, name


FAULTS = """
import ctypes, resource, sys
from core.cpualloc import keep_freed_memory
if sys.argv[1] == "tuned" and not keep_freed_memory():
    print("not glibc"); raise SystemExit
assert sys.argv[1] != "tuned" or keep_freed_memory()  # idempotent
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n = 40 * 2**20  # past glibc's largest dynamic mmap threshold (32 MB): untuned, always mmap'd
def cycle():
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)  # every page touched by this thread, where faults are counted
    libc.free(p)
cycle()
before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
cycle()
print(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux")
def test_freed_memory_is_reused_without_page_faults():
    """The mechanism, deterministically: tuned, a freed 40 MB block stays mapped and the next
    one reuses its pages; untuned, glibc unmaps it and every page faults in again. Each side in
    a fresh process, as a training worker is: in a long test session, whether a block is reused
    depends on what else lies on the heap (torch allocates aligned, so an equal-sized tensor may
    not fit the hole another left; bench_core measures the effect on whole training steps)."""
    import subprocess

    def faults(mode: str) -> str:
        run = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True,
                             text=True, timeout=120, check=True)  # fmt: skip
        return run.stdout.strip()

    tuned = faults("tuned")
    if tuned == "not glibc":
        pytest.skip("not glibc")
    assert int(tuned) < 100
    assert int(faults("untuned")) > 5000  # 40 MB in 4 kB pages: 10240
