"""The GPT model: config validation, fast vs explicit attention, KV cache, causality, overfitting."""

import itertools

import pytest
import torch

from core.attention import explicit_attention
from core.config import PRESETS, ConfigError, ModelConfig, preset
from core.model import GPT

VARIANTS = list(
    itertools.product(
        ("gelu", "relu", "swiglu"),
        ("layernorm", "rmsnorm"),
        ("pre", "post"),
        ("learned", "sinusoidal", "rope", "none"),
    )
)


def perturbed(model: GPT, scale: float = 0.1, seed: int = 1) -> GPT:
    """Noise on every parameter: at init the norms are 1, the biases 0 and attention nearly
    uniform, so a bug in any of them hides inside a tolerance (found by mutation testing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g).to(p.dtype) * scale)
    return model


def variant(act, norm, pos, enc, **kw):
    return preset("tiny", activation=act, norm=norm, norm_position=pos, pos_encoding=enc, **kw)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"d_model": 30, "n_heads": 4}, "n_heads"),
        ({"activation": "tanh"}, "activation"),
        ({"norm": "batchnorm"}, "norm"),
        ({"norm_position": "middle"}, "norm_position"),
        ({"pos_encoding": "alibi"}, "pos_encoding"),
        ({"init": "zeros"}, "init"),
        ({"dropout": 1.0}, "dropout"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"context_length": 2.5}, "context_length"),
        ({"d_ff": -1}, "d_ff"),
        ({"d_model": 12, "n_heads": 4, "pos_encoding": "rope"}, "pos_encoding"),
        ({"bias": "yes"}, "bias"),
    ],
)
def test_impossible_config_names_the_field(fields, field):
    with pytest.raises(ConfigError) as err:
        ModelConfig(**fields)
    assert err.value.field == field
    assert str(err.value).startswith(field)


def test_config_round_trip_and_unknown_key():
    cfg = preset("small", activation="swiglu")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="n_layer"):
        ModelConfig.from_dict({**cfg.to_dict(), "n_layer": 3})
    with pytest.raises(ConfigError, match="preset"):
        preset("huge")
    assert set(PRESETS) >= {"tiny", "small", "gpt2"}


def test_derived_sizes():
    assert ModelConfig(d_model=256, n_heads=4).head_dim == 64
    assert ModelConfig(d_model=256).ff_dim == 1024
    assert ModelConfig(d_model=256, activation="swiglu").ff_dim == 704
    assert ModelConfig(d_model=256, d_ff=100).ff_dim == 100


def test_forward_shapes_and_loss(tiny_model, tiny_ids, tiny_config):
    logits, loss = tiny_model(tiny_ids)
    assert logits.shape == (*tiny_ids.shape, tiny_config.vocab_size)
    assert loss is None
    targets = tiny_ids.clone()
    _, loss = tiny_model(tiny_ids, targets)
    ref = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert torch.allclose(loss, ref, atol=1e-6)
    # ignore_index=-100 positions do not count
    targets[:, :8] = -100
    _, loss = tiny_model(tiny_ids, targets)
    ref = torch.nn.functional.cross_entropy(logits[:, 8:].flatten(0, 1), tiny_ids[:, 8:].flatten())
    assert torch.allclose(loss, ref, atol=1e-6)


def test_too_long_sequence_is_refused(tiny_model, tiny_config):
    with pytest.raises(ValueError, match="context_length"):
        tiny_model(torch.zeros(1, tiny_config.context_length + 1, dtype=torch.long))


def test_tied_embeddings(tiny_config):
    model = GPT(tiny_config)
    assert model.lm_head.weight is model.tok_emb.weight
    untied = GPT(tiny_config.replace(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.tok_emb.weight
    C, V = tiny_config.d_model, tiny_config.vocab_size
    assert untied.num_params() == model.num_params() + C * V


def test_module_tree_names(tiny_config):
    keys = set(GPT(tiny_config).state_dict())
    for name in (
        "tok_emb.weight",
        "pos_emb.weight",
        "blocks.0.ln1.weight",
        "blocks.1.ln2.bias",
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.proj.bias",
        "blocks.1.mlp.fc.weight",
        "blocks.1.mlp.proj.weight",
        "ln_f.weight",
        "lm_head.weight",
    ):
        assert name in keys
    rope_keys = set(GPT(tiny_config.replace(pos_encoding="rope")).state_dict())
    assert not any(k.startswith("pos_emb") or "rope" in k for k in rope_keys)


def test_gpt2_init_scales_residual_projections():
    torch.manual_seed(0)
    model = GPT(preset("small", n_layers=8))
    assert abs(model.blocks[0].attn.qkv.weight.std().item() - 0.02) < 1e-3
    assert abs(model.blocks[0].mlp.proj.weight.std().item() - 0.02 / 4) < 1e-3
    xavier = GPT(preset("tiny", init="xavier"))
    assert xavier.blocks[0].attn.qkv.weight.abs().max() > 0.1


@pytest.mark.parametrize("enc", ["learned", "sinusoidal", "rope", "none"])
def test_explicit_attention_equals_sdpa(enc):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 24, 8) for _ in range(3))
    fast = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (explicit_attention(q, k, v) - fast).abs().max() <= 1e-5
    # and through a whole model: the recorder switches every block to the explicit path
    model = GPT(preset("tiny", pos_encoding=enc)).eval()
    ids = torch.randint(0, 128, (2, 32))

    class Nothing:
        def put(self, name, tensor):
            pass

    with torch.no_grad():
        a, _ = model(ids)
        b, _ = model(ids, recorder=Nothing())
    assert (a - b).abs().max() <= 1e-5


@pytest.mark.parametrize("act, norm, pos, enc", VARIANTS[::5])
def test_kv_cache_matches_full_forward(act, norm, pos, enc):
    torch.manual_seed(0)
    model = perturbed(GPT(variant(act, norm, pos, enc)).eval())
    ids = torch.randint(0, 128, (2, 32))
    with torch.inference_mode():
        full, _ = model(ids)
        cache = model.new_cache(batch=2)
        out = [model.forward_cached(ids[:, :20], cache)]
        out += [model.forward_cached(ids[:, t : t + 1], cache) for t in range(20, 32)]
        assert cache.free == 0
        with pytest.raises(ValueError, match="full"):
            model.forward_cached(ids[:, :1], cache)
    got = torch.stack(out, dim=1)  # (B, 13, V)
    assert (got - full[:, 19:]).abs().max() <= 1e-5 * full.abs().max().clamp(min=1)


@pytest.mark.parametrize("enc", ["learned", "sinusoidal", "rope", "none"])
def test_causality(enc):
    """Changing token t changes no logits before t."""
    torch.manual_seed(0)
    model = GPT(preset("tiny", pos_encoding=enc)).eval()
    ids = torch.randint(0, 128, (1, 32))
    changed = ids.clone()
    changed[0, 20] = (ids[0, 20] + 1) % 128
    with torch.no_grad():
        a, _ = model(ids)
        b, _ = model(changed)
    assert torch.equal(a[:, :20], b[:, :20])
    assert not torch.allclose(a[:, 20:], b[:, 20:])


def test_dropout_only_in_training(tiny_config, tiny_ids):
    model = GPT(tiny_config.replace(dropout=0.5))
    torch.manual_seed(0)
    a, _ = model(tiny_ids)
    b, _ = model(tiny_ids)
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(model(tiny_ids)[0], model(tiny_ids)[0])


@pytest.mark.parametrize("act, norm, pos, enc", VARIANTS, ids=["-".join(v) for v in VARIANTS])
def test_every_variant_overfits_one_batch(act, norm, pos, enc):
    torch.manual_seed(0)
    model = GPT(variant(act, norm, pos, enc, context_length=16))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 128, (4, 17), generator=g)
    x, y = ids[:, :-1], ids[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    first = None
    for _ in range(40):
        _, loss = model(x, y)
        first = first if first is not None else loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first, (first, loss.item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_cross_entropy_matches_torch(dtype):
    from core.layers import cross_entropy

    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(300, 50, generator=g) * 3).to(dtype)
    targets = torch.randint(0, 50, (300,), generator=g)
    targets[::7] = -100
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy(a.float(), targets, ignore_index=-100)
    ours = cross_entropy(b, targets, rows=64)
    assert torch.equal(b.detach(), logits), "the loss changed its input"
    (ref * 3).backward()
    (ours * 3).backward()
    assert ours.dtype == torch.float32 and abs(ours.item() - ref.item()) < 1e-5
    assert b.grad.dtype == dtype
    assert (a.grad.float() - b.grad.float()).abs().max() < (
        1e-6 if dtype == torch.float32 else 1e-3
    )
    assert (b.grad[::7] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cross_entropy_of_a_vanishing_target_probability(dtype):
    """A logit margin so large that p(target) underflows still gives the exact finite loss."""
    from core.layers import cross_entropy

    logits = torch.zeros(5, 40)
    logits[:, 3] = torch.tensor([0.0, 80.0, 150.0, 300.0, 1000.0])  # target 0 falls behind
    logits = logits.to(dtype)
    targets = torch.tensor([0, 0, 0, 0, -100])
    ref = torch.nn.functional.cross_entropy(logits.float(), targets, ignore_index=-100)
    ours = cross_entropy(logits, targets, rows=2)
    assert torch.isfinite(ours) and abs(ours.item() - ref.item()) < 1e-4 * ref.item()


def test_bf16_matmul_attention_matches_sdpa():
    from core.attention import matmul_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 40, 16, requires_grad=True) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (matmul_attention(q, k, v) - ref).abs().max() <= 1e-5
    ref.sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    matmul_attention(q, k, v).sum().backward()
    assert all((t.grad - g).abs().max() <= 1e-4 for t, g in zip((q, k, v), grads))
    low = [t.detach().bfloat16() for t in (q, k, v)]
    assert (matmul_attention(*low).float() - ref).abs().max() < 0.05


def test_bf16_autocast_training_step(tiny_config, tiny_ids):
    torch.manual_seed(0)
    model = GPT(tiny_config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(tiny_ids, tiny_ids)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    fp32_logits, fp32_loss = model(tiny_ids, tiny_ids)
    assert abs(loss.item() - fp32_loss.item()) < 1e-3  # measured ~4e-5
    assert (logits.float() - fp32_logits).abs().max() < 1e-2  # measured ~2e-3


@pytest.mark.parametrize(
    "act, norm, pos, enc", VARIANTS[1::3], ids=["-".join(v) for v in VARIANTS[1::3]]
)
@pytest.mark.parametrize(
    "dtype, blas", [(torch.float32, True), (torch.float32, False), (torch.bfloat16, True)]
)
def test_decoder_steps_match_full_forward(act, norm, pos, enc, dtype, blas, monkeypatch):
    """Both fp32 step paths (numpy's BLAS, and torch's when that is unavailable) and bf16."""
    from core import kvcache
    from core.kvcache import Decoder

    if not blas:
        monkeypatch.setattr(kvcache, "_numpy_blas_on", lambda threads: False)
    torch.manual_seed(0)
    model = perturbed(GPT(variant(act, norm, pos, enc)).eval()).to(dtype)
    ids = torch.randint(0, 128, (1, 32))
    with torch.inference_mode():
        full = model(ids)[0][0].float()  # (T, V)
        dec = Decoder(model)
        assert dec.numpy == (blas and dtype == torch.float32)
        got = [dec.prefill(ids[:, :5])] + [dec.step(int(t)) for t in ids[0, 5:]]
        with pytest.raises(ValueError, match="full"):
            dec.step(1)
    tol = (1e-5 if dtype == torch.float32 else 3e-2) * full.abs().max().clamp(min=1)
    assert (torch.stack(got).float() - full[4:]).abs().max() <= tol


@pytest.mark.parametrize("blas", [True, False])
def test_decoder_without_biases_or_tied_head(blas, monkeypatch):
    """A LLaMA-like variant (no biases, untied head, RoPE, SwiGLU, RMSNorm) steps correctly."""
    from core import kvcache
    from core.kvcache import Decoder

    if not blas:
        monkeypatch.setattr(kvcache, "_numpy_blas_on", lambda threads: False)
    cfg = variant("swiglu", "rmsnorm", "pre", "rope", bias=False, tie_embeddings=False)
    torch.manual_seed(0)
    model = perturbed(GPT(cfg).eval())
    ids = torch.randint(0, 128, (1, 32))
    with torch.inference_mode():
        full = model(ids)[0][0]  # (T, V)
        dec = Decoder(model)
        got = [dec.prefill(ids[:, :5])] + [dec.step(int(t)) for t in ids[0, 5:]]
    assert (torch.stack(got) - full[4:]).abs().max() <= 1e-5 * full.abs().max().clamp(min=1)
