"""The Trainer's speed internals: fused AdamW, the fused LM head + loss, reused freed memory.
Behaviour only (no timings): what each one must not change, and that each one is in effect."""

import resource
import sys

import pytest
import torch

from core.cpualloc import keep_freed_memory
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux")
def test_freed_memory_is_reused_without_page_faults():
    if not keep_freed_memory():
        pytest.skip("not glibc")

    def cycle():
        t = torch.empty(10 * 2**20, dtype=torch.float32)  # 40 MB: past glibc's mmap threshold
        t.fill_(1.0)
        del t

    cycle()
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    cycle()
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
    assert faults < 1000  # untuned: one fault per 4-8 kB page, ~5-10k here
    assert keep_freed_memory()  # idempotent
