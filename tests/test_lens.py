"""core.lens and core.neighbours on a tiny random GPT, checked against direct computations."""

import math

import numpy as np
import pytest
import torch

from core.config import preset
from core.lens import (
    attention_steps,
    inside_trace,
    logit_lens,
    mlp_neurons,
    norm_stats,
    residual_norms,
    token_losses,
)
from core.model import GPT
from core.neighbours import (
    category_lookup,
    nearest,
    position_similarity,
    search_tokens,
    token_table,
    unit_rows,
)


@pytest.fixture
def traced(tiny_model):
    ids = torch.arange(3, 15)  # (T,) = 12 tokens
    logits, trace = inside_trace(tiny_model, ids)
    return tiny_model, ids.numpy(), logits, trace


def test_logit_lens_last_stage_is_the_model_output(traced):
    model, ids, logits, trace = traced
    g = logit_lens(model, trace, ids)
    L = model.config.n_layers
    assert g.stages == [f"L{i} {s}" for i in range(L) for s in ("attn", "mlp")]
    assert g.top_ids.shape == g.top_probs.shape == (2 * L, len(ids))
    # after the last MLP, ln_f + lm_head is exactly what the model outputs
    np.testing.assert_array_equal(g.top_ids[-1], logits[0].argmax(-1).numpy())
    np.testing.assert_array_equal(g.final_ids, g.top_ids[-1])
    p = torch.softmax(logits[0], -1)
    np.testing.assert_allclose(g.top_probs[-1], p.max(-1).values.numpy(), rtol=1e-5)
    assert np.isnan(g.target_probs[:, -1]).all()
    want = p[np.arange(len(ids) - 1), ids[1:]].numpy()
    np.testing.assert_allclose(g.target_probs[-1, :-1], want, rtol=1e-5)


def test_the_lens_reads_a_bf16_model(tiny_model):
    """The trace is CPU fp32 while the model may be bf16: logit_lens ran bf16 norms on fp32
    inputs ('mixed dtype' RuntimeError). Found by a review."""
    model = GPT(tiny_model.config).eval()
    model.load_state_dict(tiny_model.state_dict())
    model = model.to(torch.bfloat16)
    ids = torch.arange(3, 15)
    logits, trace = inside_trace(model, ids)
    g = logit_lens(model, trace, ids.numpy())
    assert np.isfinite(g.top_probs).all() and g.top_ids.shape[1] == len(ids)
    steps = attention_steps(trace, 0, 1, 5, model=model)
    assert steps.out is not None and np.isfinite(steps.out).all()


def test_logit_lens_attention_stage_matches_a_direct_decode(traced):
    model, ids, _, trace = traced
    g = logit_lens(model, trace, ids)
    with torch.no_grad():
        direct = model.lm_head(model.ln_f(trace["blocks.0.resid_mid"][0])).argmax(-1).numpy()
    np.testing.assert_array_equal(g.top_ids[0], direct)


def test_token_losses_average_to_the_model_loss(traced):
    model, ids, logits, _ = traced
    losses = token_losses(logits, ids)
    assert losses.shape == (len(ids),) and np.isnan(losses[0])
    x = torch.as_tensor(ids)[None]
    with torch.no_grad():
        _, loss = model(x[:, :-1], x[:, 1:])
    assert math.isclose(float(np.mean(losses[1:])), float(loss), rel_tol=1e-4)


def test_residual_norms_and_norm_stats(traced):
    model, ids, _, trace = traced
    stages, norms = residual_norms(trace)
    L = model.config.n_layers
    assert stages[0] == "embed" and len(stages) == 1 + 2 * L
    assert norms.shape == (1 + 2 * L, len(ids))
    np.testing.assert_allclose(norms[-1], trace[f"blocks.{L - 1}.resid_post"][0].norm(dim=-1))
    rows = norm_stats(model, trace)
    assert [r["norm"] for r in rows][-1] == "ln_f" and len(rows) == 2 * L + 1
    assert all(r["out_rms_mean"] > 0 and "in_rms_mean" in r and "gain_mean" in r for r in rows)


def test_mlp_neurons_top_records(traced):
    model, ids, _, trace = traced
    rep = mlp_neurons(trace, 1, k=5, bins=20)
    acts = trace["blocks.1.mlp.post"][0].numpy()
    assert rep.acts.shape == acts.shape and rep.hist_counts.sum() == acts.size
    assert len(rep.top) == 5
    best = rep.top[0]
    assert best["neuron"] == int(acts.max(0).argmax())
    assert best["max"] == pytest.approx(float(acts.max()))
    assert acts[best["top_positions"][0], best["neuron"]] == pytest.approx(best["max"])
    assert [t["max"] for t in rep.top] == sorted((t["max"] for t in rep.top), reverse=True)


def test_attention_steps_reproduce_the_trace(traced):
    model, ids, _, trace = traced
    q = 7
    s = attention_steps(trace, layer=1, head=2, query=q, model=model)
    D = model.config.d_model // model.config.n_heads
    T = len(ids)
    assert s.q.shape == (D,) and s.k.shape == (T, D) and s.weights.shape == (T,)
    np.testing.assert_allclose(s.scaled, s.dots / math.sqrt(D), rtol=1e-6)
    assert np.isneginf(s.masked[q + 1 :]).all() and (s.weights[q + 1 :] == 0).all()
    assert s.weights.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(s.weights, s.captured_weights, atol=1e-6)
    np.testing.assert_allclose(s.z, s.captured_z, atol=1e-5)
    np.testing.assert_allclose(
        s.scaled[: q + 1],
        trace["blocks.1.attn.scores"][0, 2, q, : q + 1].numpy(),
        rtol=1e-4,
        atol=1e-5,
    )
    assert s.out.shape == (model.config.d_model,)
    assert [st["step"] for st in s.steps][-1] == "output"
    assert "(1, 4, 12, 8)" in s.shapes["q"]
    with pytest.raises(IndexError):
        attention_steps(trace, 0, 0, T)


def test_head_outputs_sum_to_attn_out(traced):
    model, ids, _, trace = traced
    H = model.config.n_heads
    q = 5
    total = sum(attention_steps(trace, 0, h, q, model=model).out for h in range(H))
    bias = model.blocks[0].attn.proj.bias
    total = total + (bias.detach().numpy() if bias is not None else 0)
    np.testing.assert_allclose(total, trace["blocks.0.attn.out"][0, q].numpy(), atol=1e-5)


@pytest.mark.parametrize("pos", ["rope", "sinusoidal", "none"])
def test_every_position_encoding_traces(pos):
    torch.manual_seed(0)
    m = GPT(preset("tiny", pos_encoding=pos)).eval()
    _, trace = inside_trace(m, list(range(10)))
    assert attention_steps(trace, 0, 0, 4).weights.shape == (10,)
    kind, sim = position_similarity(m, 16)
    assert kind == pos
    if pos == "none":
        assert sim is None
    else:
        assert sim.shape == (16, 16)
        np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-5)
    if pos == "sinusoidal":  # fixed table: similarity depends on the distance only
        assert np.allclose(sim[3, 1], sim[10, 8], atol=1e-5)
    if pos == "rope":  # relative: constant along every diagonal
        assert np.allclose(sim[3, 1], sim[10, 8])


def test_nearest_neighbours_by_cosine():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(50, 8)).astype(np.float32)
    m[7] = 3 * m[3] + 0.01  # same direction, different length
    ids, sims = nearest(m, 3, k=5)
    assert ids[0] == 7 and sims[0] > 0.99 and 3 not in ids
    u = unit_rows(m)
    direct = np.argsort(-(u @ u[3]))[1:6]
    np.testing.assert_array_equal(ids, direct)
    assert (np.diff(sims) <= 0).all()


def test_search_tokens_orders_exact_then_prefix_then_substring():
    labels = ["cat", " cat", " catalog", "concat", " Cat", "dog"]
    got = search_tokens(labels, "cat")
    assert got[0] == 0 and set(got[1:3]) == {1, 4} and got[3] == 2 and got[4] == 3
    assert search_tokens(labels, "  ") == [] and search_tokens(labels, "zebra") == []


def test_token_table_categories_and_counts():
    class Tok:
        vocab_size = 5

        def token_label(self, i):
            return ["a", " Mia", " red", "red", "!"][i]

    t = token_table(Tok(), np.array([1, 1, 2, 4, 9]), {"names": ["Mia"], "colours": ["red"]})
    assert t.categories == ["other", "names", "colours", "colours", "other"]
    assert t.counts.tolist() == [0, 2, 1, 0, 1] and t.lengths.tolist() == [1, 3, 3, 3, 1]
    assert category_lookup({"a": ["x"], "b": ["X"]}) == {"x": "a"}
    padded = token_table(Tok(), None, {}, vocab_size=7)  # a model padded past its tokenizer
    assert padded.labels[5:] == ["<5>", "<6>"] and len(padded.counts) == 7


def test_learned_position_similarity_is_centred(tiny_model):
    with torch.no_grad():
        tiny_model.pos_emb.weight.add_(5.0)  # a shared offset must not make positions alike
    _, sim = position_similarity(tiny_model, 16)
    assert abs(float(sim[np.triu_indices(16, 1)].mean())) < 0.3
