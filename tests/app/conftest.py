"""AppTest fixtures for the explorer pages.

`app` is a fresh AppTest of explorer/app.py on the shipped model (assets/default). Until that
asset exists (or if it cannot be loaded) a small random-init GPT with a BPE trained on TinyTales
stands in for it (loaders.get_model is patched for the "default" key), so the page tests still
drive every control. `open_page(app, "sample", prompt="...")` runs one page with URL params.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "explorer" / "app.py")


@functools.cache
def _stand_in():
    from core.config import ModelConfig
    from core.corpora import load_corpus
    from core.model import GPT
    from core.tokenizer import train_bpe
    from explorer import loaders

    tok = train_bpe(load_corpus("tinytales", n_bytes=30_000), 384)
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=tok.vocab_size, context_length=64, d_model=32, n_layers=2, n_heads=2
    )
    model = GPT(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return loaders.LoadedModel("default", model, tok, cfg, None, "stand-in model", {})


@functools.cache
def shipped_model_loads() -> bool:
    from explorer import compute, registry

    try:
        compute.load_model("default", str(registry.default_dir()))
        return True
    except compute.ModelUnavailable:
        return False


@pytest.fixture
def app(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from explorer import loaders

    torch.set_num_threads(1)
    monkeypatch.setenv("GLASSBOX_RUNS", str(tmp_path / "runs"))
    if not shipped_model_loads():
        real = loaders.get_model
        monkeypatch.setattr(
            loaders, "get_model", lambda key: _stand_in() if key == "default" else real(key)
        )
    return AppTest.from_file(APP, default_timeout=120)


def _open_page(at, name: str, **query):
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(f"../pages/{name}.py")
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def open_page():
    """open_page(app, "sample", prompt="hi") -> the AppTest after running that page."""
    return _open_page
