"""Shared helpers for the trainer tests: a tiny corpus, tokenizer, model and config."""

from __future__ import annotations

import functools

import numpy as np
import torch

from core.config import preset
from core.model import GPT
from core.train_config import TrainConfig


@functools.cache
def tiny_data():
    """(tokenizer, train ids, val ids) from 60 kB of TinyTales and a 300-token BPE."""
    from core.corpora import tinytales
    from core.tokenizer import train_bpe

    text = tinytales.generate(60_000, seed=0)
    tok = train_bpe(text, 300)
    ids = np.array(tok.encode(text), dtype=np.int64)
    cut = int(len(ids) * 0.9)
    return tok, ids[:cut], ids[cut:]


def cycle_model(pos_encoding: str = "learned") -> tuple[GPT, torch.Tensor]:
    """A tiny GPT (context 32) taught a cycle of 13 random tokens, so that its greedy ids vary
    instead of repeating one token; (model in eval mode, the cycle's ids)."""
    torch.manual_seed(0)
    model = GPT(preset("tiny", pos_encoding=pos_encoding))
    cycle = torch.randperm(128, generator=torch.Generator().manual_seed(0))[:13]
    seq = cycle.repeat(6)[None, :33]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = model(seq[:, :-1], seq[:, 1:])[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), cycle


def tiny_model(vocab_size: int, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(preset("tiny", vocab_size=vocab_size, **overrides))


def tiny_cfg(**overrides) -> TrainConfig:
    base = dict(
        max_steps=6,
        batch_size=4,
        lr=3e-3,
        warmup_steps=2,
        eval_every=3,
        eval_batches=2,
        sample_tokens=8,
        ckpt_every=3,
        telemetry_every=2,
        heartbeat_every=0.0,
        device="cpu",
    )
    base.update(overrides)
    return TrainConfig(**base)


def losses(events) -> list[float]:
    return [e.loss for e in events if e.kind == "step"]
