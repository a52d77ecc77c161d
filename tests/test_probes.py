"""Probes: the pinned name list, capture leaves logits and model alone, thread safety."""

import threading

import pytest
import torch

from core.config import preset
from core.model import GPT
from core.probes import ProbeError, capture, probe_names

GOLDEN_BLOCK = [
    "resid_pre", "ln1.out", "attn.q", "attn.k", "attn.v", "attn.scores", "attn.pattern",
    "attn.z", "attn.out", "resid_mid", "ln2.out", "mlp.pre", "mlp.post", "mlp.out", "resid_post",
]  # fmt: skip


def test_golden_probe_names(tiny_config):
    expected = ["embed.tok", "embed.pos"]
    for i in range(2):
        expected += [f"blocks.{i}.{s}" for s in GOLDEN_BLOCK]
    expected += ["ln_f.out", "logits"]
    assert probe_names(tiny_config) == expected
    # no position table to record for rope / none
    assert "embed.pos" not in probe_names(tiny_config.replace(pos_encoding="rope"))
    post = probe_names(tiny_config.replace(norm_position="post"))
    assert post.index("blocks.0.attn.out") < post.index("blocks.0.ln1.out")
    assert sorted(post) == sorted(expected)


@pytest.mark.parametrize("enc", ["learned", "sinusoidal", "rope", "none"])
@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_capture_all_shapes_and_logits(enc, norm_position):
    cfg = preset("tiny", pos_encoding=enc, norm_position=norm_position, activation="swiglu")
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 12))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attrs = {id(m): sorted(vars(m)) for m in model.modules()}
    with torch.no_grad():
        plain, _ = model(ids)
    logits, trace = capture(model, ids)
    assert list(trace) == probe_names(cfg)
    assert (logits - plain).abs().max() <= 1e-5
    assert torch.equal(trace["logits"], logits)
    B, T, C, H, D, F, V = 2, 12, cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.ff_dim, cfg.vocab_size
    shapes = {"embed.tok": (B, T, C), "embed.pos": (B, T, C), "ln_f.out": (B, T, C),
              "logits": (B, T, V), "attn.q": (B, H, T, D), "attn.k": (B, H, T, D),
              "attn.v": (B, H, T, D), "attn.z": (B, H, T, D), "attn.scores": (B, H, T, T),
              "attn.pattern": (B, H, T, T), "mlp.pre": (B, T, F), "mlp.post": (B, T, F)}  # fmt: skip
    for name, t in trace.items():
        key = name.split(".", 2)[-1] if name.startswith("blocks.") else name
        assert t.shape == shapes.get(key, (B, T, C)), name
        assert t.dtype == torch.float32 and not t.requires_grad
    # the model is unchanged and has no hooks
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    from torch.nn.modules import module as nn_module

    assert not (nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks)
    assert {id(m): sorted(vars(m)) for m in model.modules()} == attrs  # nothing left behind
    # the last residual stream, normed, is what the head reads
    last = trace[f"blocks.{cfg.n_layers - 1}.resid_post"]
    assert torch.allclose(model.ln_f(last), trace["ln_f.out"], atol=1e-6)


@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_recorded_values_are_what_flowed(norm_position):
    """Each recording equals the computation it names, on a model with noisy weights (shape
    checks alone let a wrong pattern or swapped MLP hiddens pass: found by mutation testing)."""
    import torch.nn.functional as F

    cfg = preset("tiny", norm_position=norm_position, dropout=0.0)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    B, T, C = 2, cfg.context_length, cfg.d_model
    _, t = capture(model, torch.randint(0, cfg.vocab_size, (B, T)))
    close = lambda a, b: torch.allclose(a, b, atol=1e-5, rtol=1e-5)  # noqa: E731
    assert close(t["blocks.0.resid_pre"], t["embed.tok"] + t["embed.pos"])
    for i in range(cfg.n_layers):
        a = f"blocks.{i}.attn."
        assert close(t[a + "pattern"], torch.softmax(t[a + "scores"], dim=-1))
        assert close(t[a + "z"], t[a + "pattern"] @ t[a + "v"])
        merged = t[a + "z"].transpose(1, 2).reshape(B, T, C)
        assert close(t[a + "out"], model.blocks[i].attn.proj(merged))
        m = f"blocks.{i}.mlp."
        assert close(t[m + "post"], F.gelu(t[m + "pre"], approximate="tanh"))
        assert close(t[m + "out"], model.blocks[i].mlp.proj(t[m + "post"]))
        r = f"blocks.{i}."
        if norm_position == "pre":
            assert close(t[r + "resid_mid"], t[r + "resid_pre"] + t[a + "out"])
            assert close(t[r + "resid_post"], t[r + "resid_mid"] + t[m + "out"])
        if i + 1 < cfg.n_layers:
            assert torch.equal(t[r + "resid_post"], t[f"blocks.{i + 1}.resid_pre"])


def test_attention_pattern_rows_sum_to_one_and_are_causal(tiny_model, tiny_ids):
    _, trace = capture(tiny_model, tiny_ids, ["blocks.*.attn.pattern", "blocks.0.attn.scores"])
    assert set(trace) == {"blocks.0.attn.pattern", "blocks.1.attn.pattern", "blocks.0.attn.scores"}
    T = tiny_ids.shape[1]
    upper = torch.ones(T, T, dtype=torch.bool).triu(1)
    for name in ("blocks.0.attn.pattern", "blocks.1.attn.pattern"):
        p = trace[name]
        assert torch.allclose(p.sum(-1), torch.ones(p.shape[:-1]), atol=1e-6)
        assert (p[..., upper] == 0).all()
    s = trace["blocks.0.attn.scores"]
    assert torch.isinf(s[..., upper]).all() and torch.isfinite(s[..., ~upper]).all()
    # scores are q·k/√D
    _, qk = capture(tiny_model, tiny_ids, ["blocks.0.attn.q", "blocks.0.attn.k"])
    q, k = qk["blocks.0.attn.q"], qk["blocks.0.attn.k"]
    ref = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    assert torch.allclose(s[..., ~upper], ref[..., ~upper], atol=1e-5)


def test_capture_filters_and_unknown_names(tiny_model):
    logits, trace = capture(tiny_model, [1, 2, 3], "embed.tok")
    assert logits.shape == (1, 3, 128) and list(trace) == ["embed.tok"]
    with pytest.raises(ProbeError, match="blocks.9"):
        capture(tiny_model, [1, 2, 3], ["blocks.9.attn.pattern"])
    with pytest.raises(ProbeError, match="attn.nope"):
        capture(tiny_model, [1, 2, 3], ["logits", "*.attn.nope"])


def test_captured_tensors_do_not_alias_parameters(tiny_model):
    _, trace = capture(tiny_model, [1, 2, 3], ["embed.pos"])
    trace["embed.pos"].zero_()
    assert tiny_model.pos_emb.weight[:3].abs().sum() > 0


def test_capture_in_training_mode_has_no_dropout(tiny_config, tiny_ids):
    torch.manual_seed(0)
    model = GPT(tiny_config.replace(dropout=0.5))  # training mode
    a, _ = capture(model, tiny_ids, "logits")
    b, _ = capture(model, tiny_ids, "logits")
    assert torch.equal(a, b) and model.training


def test_many_threads_share_one_model(tiny_model, tiny_config):
    """Threads capture different names on different inputs at once; each gets its own answer."""
    names = probe_names(tiny_config)
    jobs = []
    for i in range(16):
        ids = torch.randint(0, 128, (1, 8 + i), generator=torch.Generator().manual_seed(i))
        jobs.append((ids, [names[(3 * i + j) % len(names)] for j in range(4)]))
    expected = [capture(tiny_model, ids, want) for ids, want in jobs]
    results: dict[int, tuple] = {}
    barrier = threading.Barrier(8)

    def work(worker):
        barrier.wait()
        for _ in range(5):
            for i in range(worker, len(jobs), 8):
                results[(worker, i)] = capture(tiny_model, *jobs[i])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16
    for (_, i), (logits, trace) in results.items():
        assert torch.equal(logits, expected[i][0])
        assert list(trace) == list(expected[i][1])
        for name in trace:
            assert torch.equal(trace[name], expected[i][1][name]), name
