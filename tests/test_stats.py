"""Sizes from the config alone agree with a real model and with torch's FLOP counter."""

import itertools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from core.config import preset
from core.model import GPT
from core.stats import flops_per_token, memory_estimate, param_counts

CASES = list(
    itertools.product(
        ("gelu", "swiglu"),
        ("layernorm", "rmsnorm"),
        ("learned", "rope"),
        (True, False),
        (True, False),
    )
)


@pytest.mark.parametrize("act, norm, enc, bias, tie", CASES)
def test_param_counts_equal_the_real_model(act, norm, enc, bias, tie):
    cfg = preset("tiny", activation=act, norm=norm, pos_encoding=enc, bias=bias, tie_embeddings=tie)
    model = GPT(cfg)
    counts = param_counts(cfg)
    assert counts["total"] == model.num_params()

    def n(prefix):
        return sum(p.numel() for name, p in model.named_parameters() if name.startswith(prefix))

    assert counts["attention_per_block"] == n("blocks.0.attn.")
    assert counts["mlp_per_block"] == n("blocks.0.mlp.")
    assert counts["blocks"] == n("blocks.")
    assert counts["embeddings"] == n("tok_emb.")
    assert counts["position"] == n("pos_emb.")


def test_gpt2_small_is_124m():
    assert param_counts(preset("gpt2"))["total"] == 124_439_808


def test_flops_match_the_flop_counter():
    cfg = preset("tiny", activation="swiglu")
    model = GPT(cfg).eval()
    B, T = 2, cfg.context_length

    class Nothing:  # a recorder: the explicit attention path, whose matmuls the counter sees
        def put(self, name, tensor):
            pass

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(B, T, dtype=torch.long), recorder=Nothing())
    by_module = counter.get_flop_counts()
    ours = flops_per_token(cfg)
    total = lambda name: sum(by_module[name].values()) / (B * T)  # noqa: E731
    assert total("GPT.blocks.0.mlp") * cfg.n_layers == ours["mlp"]
    assert total("GPT.lm_head") == ours["lm_head"]
    linear = ours["attention_qkv"] + ours["attention_out"]
    attn_full = total("GPT.blocks.0.attn") * cfg.n_layers  # the counter charges all T keys
    assert attn_full - linear == pytest.approx(
        (ours["attention_scores"] + ours["attention_values"]) * 2 * T / (T + 1)
    )
    assert ours["train_step"] == 3 * ours["forward"]


def _saved_bytes(model, batch, T, bf16):
    """Bytes of the tensors autograd saves for backward in one training forward (parameters
    excluded; views of one storage counted once)."""
    storages, params = {}, {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    g = torch.Generator().manual_seed(0)
    x, y = (torch.randint(0, model.config.vocab_size, (batch, T), generator=g) for _ in "xy")
    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16),
    ):
        model(x, y, return_logits=False)
    return sum(n for ptr, n in storages.items() if ptr not in params)


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(activation="swiglu"), dict(activation="relu", bias=False),
     dict(norm="rmsnorm", norm_position="post"), dict(pos_encoding="rope", tie_embeddings=False),
     dict(pos_encoding="none", norm_position="post")],
    ids=lambda o: "-".join(f"{v}" for v in o.values()) or "default",
)  # fmt: skip
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_memory_estimate_matches_what_autograd_saves(overrides, dtype):
    cfg = preset("tiny", context_length=96, **overrides)
    model = GPT(cfg).train()
    for batch, T in ((3, 96), (2, 41)):  # odd T: uneven attention row blocks
        got = _saved_bytes(model, batch, T, dtype == "bf16")
        est = memory_estimate(cfg, batch, T, dtype=dtype)["activations"]
        assert abs(est - got) <= 0.05 * got, (batch, T, est, got)


def test_memory_estimate():
    cfg = preset("small")
    n = GPT(cfg).num_params()
    fp32 = memory_estimate(cfg, batch=8, seq_len=256)
    bf16 = memory_estimate(cfg, batch=8, seq_len=256, dtype="bf16")
    assert fp32["weights"] == 4 * n and fp32["adamw"] == 8 * n
    assert fp32["total"] == sum(v for k, v in fp32.items() if k != "total")
    assert bf16["activations"] < fp32["activations"]
    assert memory_estimate(cfg, 16, 256)["activations"] == 2 * fp32["activations"]
    with pytest.raises(ValueError, match="dtype"):
        memory_estimate(cfg, 8, dtype="int4")
