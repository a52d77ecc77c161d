"""core/ on a CUDA GPU against the same computations on the CPU, part 1: the model's attention
paths in fp32, bf16 autocast training, and the fused kernels (LM head + loss, causal attention)
against torch. Part 2 (generation, capture, Trainer, checkpoints, GPT-2): test_cuda_runs.py.

Every test skips when `torch.cuda.is_available()` is false (CI has no GPU): importing and
collecting this module never initialises CUDA. fp32 comparisons run with TF32 off
(tests/cudautil.py), so the GPU multiplies in full fp32 like the CPU reference and tolerances
can be tight.
"""

import collections
import copy

import pytest
import torch
import torch.nn.functional as F

from core.config import preset
from core.model import GPT
from core.probes import capture
from tests.cudautil import (
    LOW,
    TOL,
    batch,
    needs_cuda,
    on_cuda,
    rel_err,
)

pytestmark = [needs_cuda, pytest.mark.usefixtures("no_tf32")]  # fp32 without TF32


# (config overrides, the attention a CPU training forward takes; a GPU takes SDPA): the fused
# qkv attention needs no RoPE and no dropout, else attention by matmuls (core/attention.py)
VARIANTS = [
    ({}, "fused_causal_attention"),
    (dict(activation="relu", pos_encoding="sinusoidal", norm="rmsnorm"), "fused_causal_attention"),
    (dict(pos_encoding="none", norm_position="post", bias=False), "fused_causal_attention"),
    (
        dict(activation="swiglu", norm="rmsnorm", pos_encoding="rope", tie_embeddings=False),
        "matmul_attention",
    ),
]


@pytest.fixture
def paths(monkeypatch):
    """Counts the attention routes taken (one per block per forward), by name."""
    from core import attention

    seen = collections.Counter()

    def spy(name, fn):
        def counted(*args, **kwargs):
            seen[name] += 1
            return fn(*args, **kwargs)

        return counted

    for name in ("fused_causal_attention", "matmul_attention", "explicit_attention"):
        monkeypatch.setattr(attention, name, spy(name, getattr(attention, name)))
    monkeypatch.setattr(
        F, "scaled_dot_product_attention", spy("sdpa", F.scaled_dot_product_attention)
    )
    return seen


# -- 1. fp32: GPU == CPU on every attention path ------------------------------------------
@pytest.mark.parametrize(
    "kw, train_path", VARIANTS, ids=[v[1][:5] + str(i) for i, v in enumerate(VARIANTS)]
)
def test_fp32_logits_loss_and_grads_match_cpu(kw, train_path, paths):
    torch.manual_seed(0)
    cpu = GPT(preset("tiny", **kw))
    gpu = on_cuda(cpu)
    L = cpu.config.n_layers
    ids, tgt = batch()
    out = {}
    for m in (cpu, gpu):  # training forward (grad on), with and without the logits
        dev = m.tok_emb.weight.device
        logits, loss = m(ids.to(dev), tgt.to(dev))
        loss.backward()
        _, lean = m(ids.to(dev), tgt.to(dev), return_logits=False)
        assert torch.equal(lean, loss), "return_logits=False changed the loss"
        out[dev.type] = logits, loss, {n: p.grad for n, p in m.named_parameters()}
    # the CPU trains through its matmul route, the GPU through SDPA (core/attention.py)
    assert paths[train_path] == 2 * L and paths["sdpa"] == 2 * L, dict(paths)
    (c_logits, c_loss, c_grads), (g_logits, g_loss, g_grads) = out["cpu"], out["cuda"]
    assert g_logits.is_cuda and rel_err(g_logits, c_logits) <= TOL
    assert abs(g_loss.item() - c_loss.item()) <= TOL * c_loss.item()
    for name, grad in c_grads.items():
        assert rel_err(g_grads[name], grad) <= TOL, name

    paths.clear()  # fp32 inference: SDPA
    for m in (cpu.eval(), gpu.eval()):
        dev = m.tok_emb.weight.device
        with torch.no_grad():
            out[dev.type] = m(ids.to(dev), tgt.to(dev))
    assert paths["sdpa"] == 2 * L and paths["fused_causal_attention"] == 0, dict(paths)
    assert rel_err(out["cuda"][0], out["cpu"][0]) <= TOL
    assert abs(out["cuda"][1].item() - out["cpu"][1].item()) <= TOL * out["cpu"][1].item()

    paths.clear()  # capture: the explicit path
    logits, _ = capture(gpu, ids, names=["logits"])
    assert paths["explicit_attention"] == L and paths["sdpa"] == 0, dict(paths)
    assert rel_err(logits, out["cpu"][0]) <= TOL


# -- 2. bf16 autocast and the fused kernels ------------------------------------------------
@pytest.mark.parametrize("kw", [{}, dict(pos_encoding="rope")], ids=["fused", "matmul"])
def test_bf16_autocast_training_step(kw):
    torch.manual_seed(0)
    model = GPT(preset("tiny", **kw)).cuda()
    ids, tgt = (t.cuda() for t in batch())

    def step(bf16: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            logits, loss = model(ids, tgt, return_logits=False)
        assert logits is None and loss.dtype == torch.float32
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss16, grads16 = step(True)
    loss32, grads32 = step(False)
    assert abs(loss16 - loss32) < 0.05 and torch.isfinite(torch.tensor(loss16))
    for name, g in grads16.items():
        assert g.dtype == torch.float32 and torch.isfinite(g).all(), name
        err = float((g - grads32[name]).norm() / grads32[name].norm().clamp(min=1e-12))
        assert err < 0.05, f"{name}: bf16 grad off fp32 by {err:.3g} (relative norm)"
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, loss = model(ids, tgt)  # logits kept: bf16, as autocast's matmul gives
    assert logits.dtype == torch.bfloat16 and abs(loss.item() - loss32) < 0.05
    with torch.no_grad():  # a bf16 model without autocast, no grad
        low, _ = copy.deepcopy(model).bfloat16()(ids)
        ref, _ = model(ids)
    assert low.dtype == torch.bfloat16 and rel_err(low, ref) <= LOW


def test_bf16_autocast_with_dropout_trains():
    torch.manual_seed(0)
    model = GPT(preset("tiny", dropout=0.1)).cuda().train()
    ids, tgt = (t.cuda() for t in batch())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, loss = model(ids, tgt, return_logits=False)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _loss_grads(fn, x, w):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss, logits = fn(x, w)
    (loss * 3).backward()  # an incoming gradient other than 1
    return loss, logits, x.grad, w.grad


@pytest.mark.parametrize("mode", ["fp32", "bf16", "autocast"])
def test_linear_cross_entropy_matches_torch(mode):
    from core.layers import linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(300, 24, generator=g), torch.randn(77, 24, generator=g) * 0.5
    t = torch.randint(0, 77, (300,), generator=g)
    t[::7] = -100
    x, w, t = x.cuda(), w.cuda(), t.cuda()
    if mode == "bf16":
        x, w = x.bfloat16(), w.bfloat16()

    def ref(x, w):  # fp32 autograd on the same (rounded) inputs
        logits = F.linear(x.float(), w.float())
        return F.cross_entropy(logits, t, ignore_index=-100), logits

    def ours(x, w):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "autocast"):
            return linear_cross_entropy(x, w, t, rows=64)

    r_loss, r_logits, r_dx, r_dw = _loss_grads(ref, x, w)
    loss, logits, dx, dw = _loss_grads(ours, x, w)
    tol = TOL if mode == "fp32" else LOW
    assert loss.dtype == torch.float32 and abs(loss.item() - r_loss.item()) <= tol
    assert logits.dtype == (torch.float32 if mode == "fp32" else torch.bfloat16)
    assert (dx.dtype, dw.dtype) == (x.dtype, w.dtype)  # grads reach the inputs in their dtype
    assert rel_err(logits, r_logits) <= tol
    assert rel_err(dx, r_dx) <= tol and rel_err(dw, r_dw) <= tol
    assert (dx[::7] == 0).all()  # ignored rows get no gradient
    with torch.no_grad():  # evaluation: no logits, no gradient buffer, row blocks
        lean, _ = linear_cross_entropy(x, w, t, keep_logits=False)
    assert abs(lean.item() - r_loss.item()) <= tol


@pytest.mark.parametrize("T", [7, 40])
@pytest.mark.parametrize("mode", ["fp32", "bf16", "autocast"])
def test_fused_attention_matches_sdpa(mode, T):
    from core.attention import fused_causal_attention

    B, H, D = 2, 3, 8
    torch.manual_seed(T)
    qkv = torch.randn(B, T, 3 * H * D, device="cuda")
    if mode != "fp32":
        qkv = qkv.bfloat16()  # what a bf16 (or autocast) qkv projection hands over
    qkv.requires_grad_()

    def ref(qkv):  # fp32 SDPA on the same (rounded) inputs
        q, k, v = qkv.float().view(B, T, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        return z.transpose(1, 2).reshape(B, T, H * D)

    want = ref(qkv)
    # "autocast": CUDA's autocast runs softmax in fp32 (CPU's does not), so a kernel that
    # writes the pattern's product into a bf16 buffer must not run under it
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "autocast"):
        got = fused_causal_attention(qkv, H, blocks=2)
    assert got.shape == (B, T, H * D) and got.dtype == qkv.dtype
    gout = torch.randn_like(want)
    (g_want,) = torch.autograd.grad(want, qkv, gout)
    (g_got,) = torch.autograd.grad(got, qkv, gout.to(got.dtype))
    tol = TOL if mode == "fp32" else LOW
    assert rel_err(got, want) <= tol and rel_err(g_got, g_want) <= tol
