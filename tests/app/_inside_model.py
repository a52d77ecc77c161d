"""A model for the Embeddings / Attention / Activations AppTests.

The shipped default (assets/default) when it loads; otherwise a small random GPT with a BPE
tokenizer trained on TinyTales, so the page tests run before (or without) the shipped model.
`use_model(monkeypatch)` makes every page see it, whatever the picker says.
"""

from __future__ import annotations

import functools

import torch

from explorer import compute, loaders, registry

SMALL_VOCAB = 512


@functools.cache
def inside_model() -> loaders.LoadedModel:
    try:
        model, tok, cfg, run_dir, meta = compute.load_model("default", str(registry.default_dir()))
        return loaders.LoadedModel("default", model, tok, cfg, run_dir, "shipped model", meta)
    except Exception:  # noqa: BLE001 - no shipped model yet: a stand-in with the same shape of data
        pass
    from core.config import preset
    from core.corpora import load_corpus
    from core.model import GPT
    from core.tokenizer import train_bpe

    tok = train_bpe(load_corpus("tinytales", n_bytes=100_000), SMALL_VOCAB)
    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=tok.vocab_size, context_length=64, d_model=48, n_heads=4)
    model = GPT(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return loaders.LoadedModel("default", model, tok, cfg, None, "stand-in model", {})


def use_model(monkeypatch) -> loaders.LoadedModel:
    lm = inside_model()
    monkeypatch.setattr(loaders, "get_model", lambda key: lm)
    return lm
