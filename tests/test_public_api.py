"""Every public name that `core` advertises resolves to a real object (the README's API)."""

import core


def test_every_export_resolves():
    for name in core.__all__:
        assert getattr(core, name) is not None, name


def test_readme_example_runs():
    import torch

    cfg = core.ModelConfig(vocab_size=64, context_length=16, d_model=32, n_layers=2, n_heads=4)
    model = core.GPT(cfg).eval()
    ids = torch.randint(0, 64, (1, 12), generator=torch.Generator().manual_seed(0))
    logits, trace = core.capture(model, ids, names=["blocks.*.attn.pattern"])
    assert logits.shape == (1, 12, 64)
    assert sorted(trace) == ["blocks.0.attn.pattern", "blocks.1.attn.pattern"]
    out = core.generate(model, ids[0].tolist(), max_new_tokens=5, temperature=0)
    assert len(out.new_ids) == 5
