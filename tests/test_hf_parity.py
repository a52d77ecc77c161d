"""Hugging Face GPT-2 parity: import a local HF folder, export ours, both within 1e-4 in fp32."""

import json

import pytest
import torch

from core import hf_gpt2
from core.checkpoint import CheckpointError
from core.config import preset
from core.hf_gpt2 import export_hf_gpt2, import_hf_gpt2
from core.model import GPT

transformers = pytest.importorskip("transformers")


def random_hf(tie=True, n_inner=None, seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        vocab_size=96, n_positions=24, n_embd=32, n_layer=2, n_head=4, n_inner=n_inner,
        tie_word_embeddings=tie, layer_norm_epsilon=1e-5,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(cfg)
    with torch.no_grad():  # every weight random and large enough to matter (norms included)
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model.eval()


@pytest.mark.parametrize("tie, n_inner", [(True, None), (False, 48)])
def test_import_matches_transformers(tmp_path, tie, n_inner):
    ref = random_hf(tie, n_inner)
    ref.save_pretrained(tmp_path / "hf")
    ours = import_hf_gpt2(tmp_path / "hf")
    assert ours.config.tie_embeddings == tie and ours.config.ff_dim == (n_inner or 128)
    ids = torch.randint(0, 96, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = ref(ids).logits
        mine, _ = ours(ids)
    assert (mine - theirs).abs().max() <= 1e-4


@pytest.mark.parametrize("tie", [True, False])
def test_export_loads_in_transformers(tmp_path, tie):
    torch.manual_seed(0)
    model = GPT(preset("tiny", tie_embeddings=tie, context_length=24)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    export_hf_gpt2(model, tmp_path / "out")
    ref = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    ids = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ref(ids).logits - model(ids)[0]).abs().max() <= 1e-4
    again = import_hf_gpt2(tmp_path / "out")
    assert all(
        torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values())
    )


def test_export_refuses_non_gpt2_shapes(tmp_path):
    with pytest.raises(CheckpointError, match="pos_encoding"):
        export_hf_gpt2(GPT(preset("tiny", pos_encoding="rope")), tmp_path / "x")
    with pytest.raises(CheckpointError, match="activation"):
        export_hf_gpt2(GPT(preset("tiny", activation="swiglu")), tmp_path / "x")


def test_import_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such folder"):
        import_hf_gpt2(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="missing config.json"):
        import_hf_gpt2(tmp_path / "empty")
    random_hf().save_pretrained(tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**cfg, "n_head": 5}))
    with pytest.raises(CheckpointError, match="n_heads"):
        import_hf_gpt2(tmp_path / "hf")
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**cfg, "n_embd": 64}))
    with pytest.raises(CheckpointError, match="wrong shapes"):
        import_hf_gpt2(tmp_path / "hf")
    # a GPT-2 variant whose weights fit but whose attention differs is refused, not misread
    for flag, value in (("scale_attn_weights", False), ("scale_attn_by_inverse_layer_idx", True),
                        ("reorder_and_upcast_attn", True), ("activation_function", "gelu")):  # fmt: skip
        (tmp_path / "hf" / "config.json").write_text(json.dumps({**cfg, flag: value}))
        with pytest.raises(CheckpointError, match=flag):
            import_hf_gpt2(tmp_path / "hf")


def test_hub_name_offline_is_a_plain_fast_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub, "try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(CheckpointError, match="offline"):
        import_hf_gpt2("openai-community/gpt2")
    # and when the network check fails (no env flag), the same message, no download attempt
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf_gpt2, "_hub_reachable", lambda *a, **k: False)
    with pytest.raises(CheckpointError, match="offline"):
        import_hf_gpt2("gpt2")
