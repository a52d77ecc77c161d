"""The fused LM head + loss (core.layers.linear_cross_entropy) and the row-blocked causal
attention (core.attention.matmul_attention) against the plain torch computations."""

import pytest
import torch
import torch.nn.functional as F

from core.attention import matmul_attention
from core.config import preset
from core.layers import linear_cross_entropy
from core.model import GPT


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _problem(N=300, C=24, V=77, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, generator=g)
    w = torch.randn(V, C, generator=g) * 0.5
    t = torch.randint(0, V, (N,), generator=g)
    t[::7] = -100
    return x, w, t


def _grads(fn, x, w):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss, logits = fn(x, w)
    (loss * 3).backward()  # an incoming gradient other than 1
    return loss, logits, x.grad, w.grad


@pytest.mark.parametrize("rows", [1, 37, 64, 300, 1000])  # odd sizes, one row, all rows, more
def test_fused_loss_and_grads_equal_torch_fp32(rows):
    x, w, t = _problem()

    def ref(x, w):
        logits = F.linear(x, w)
        return F.cross_entropy(logits, t, ignore_index=-100), logits

    r_loss, r_logits, r_dx, r_dw = _grads(ref, x, w)
    loss, logits, dx, dw = _grads(lambda x, w: linear_cross_entropy(x, w, t, rows=rows), x, w)
    assert loss.dtype == torch.float32 and abs(loss.item() - r_loss.item()) < 1e-6
    assert (logits - r_logits).abs().max() < 1e-5
    assert dx.dtype == dw.dtype == torch.float32
    assert (dx - r_dx).abs().max() < 1e-6 and (dw - r_dw).abs().max() < 1e-6
    assert (dx[::7] == 0).all()  # ignored rows get no gradient


@pytest.mark.parametrize("keep_logits", [True, False])
def test_fused_loss_in_fp64_keeps_double_precision(keep_logits):
    """fp64 in, fp64 softmax and loss out (no rounding through fp32 anywhere)."""
    x, w, t = (a.double() if a.is_floating_point() else a for a in _problem())

    def ref(x, w):
        logits = F.linear(x, w)
        return F.cross_entropy(logits, t, ignore_index=-100), logits

    def ours(x, w):
        loss, logits = linear_cross_entropy(x, w, t, rows=64, keep_logits=keep_logits)
        return loss, logits

    r_loss, _, r_dx, r_dw = _grads(ref, x, w)
    loss, _, dx, dw = _grads(ours, x, w)
    assert loss.dtype == dx.dtype == dw.dtype == torch.float64
    assert abs(loss.item() - r_loss.item()) < 1e-12
    assert (dx - r_dx).abs().max() < 1e-12 and (dw - r_dw).abs().max() < 1e-12


def test_fused_loss_under_bf16_autocast_matches_autocast_torch():
    x, w, t = _problem()

    def ref(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = F.linear(x, w)
            return F.cross_entropy(logits.float(), t, ignore_index=-100), logits

    def ours(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return linear_cross_entropy(x, w, t, rows=50)

    r_loss, r_logits, r_dx, r_dw = _grads(ref, x, w)
    loss, logits, dx, dw = _grads(ours, x, w)
    assert logits.dtype == torch.bfloat16 and torch.equal(logits, r_logits)
    assert abs(loss.item() - r_loss.item()) < 1e-5
    assert dx.dtype == dw.dtype == torch.float32  # gradients reach the fp32 master weights
    scale = r_dw.abs().max()
    assert (dx - r_dx).abs().max() < 1e-2 * r_dx.abs().max()
    assert (dw - r_dw).abs().max() < 1e-2 * scale


def test_fused_loss_without_logits_and_all_ignored():
    x, w, t = _problem()
    loss, logits = linear_cross_entropy(x, w, t, keep_logits=False)
    assert logits is None
    assert abs(loss.item() - F.cross_entropy(x @ w.t(), t).item()) < 1e-6
    xr = x.clone().requires_grad_()
    none = torch.full_like(t, -100)
    loss, _ = linear_cross_entropy(xr, w, none, keep_logits=False)
    loss.backward()
    assert loss.item() == 0.0 and (xr.grad == 0).all()  # no target: zero loss, zero gradient


def test_gradient_through_the_returned_logits_too():
    """A caller that uses the logits in its own loss gets d/d logits of both terms."""
    x, w, t = _problem(N=40)

    def ref(x, w):
        logits = F.linear(x, w)
        return F.cross_entropy(logits, t) + 0.1 * logits.square().mean(), logits

    def ours(x, w):
        loss, logits = linear_cross_entropy(x, w, t, rows=16)
        return loss + 0.1 * logits.square().mean(), logits

    _, _, r_dx, r_dw = _grads(ref, x, w)
    _, _, dx, dw = _grads(ours, x, w)
    assert (dx - r_dx).abs().max() < 1e-6 and (dw - r_dw).abs().max() < 1e-6


def test_model_loss_is_the_same_with_and_without_logits():
    torch.manual_seed(0)
    model = GPT(preset("tiny"))
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    logits, loss = model(ids, ids)
    none, fused = model(ids, ids, return_logits=False)
    plain, _ = model(ids)
    assert none is None and torch.equal(logits, plain)
    assert loss.item() == pytest.approx(fused.item(), abs=1e-6)
    ref = F.cross_entropy(plain.flatten(0, 1), ids.flatten())
    assert fused.item() == pytest.approx(ref.item(), abs=1e-6)


@pytest.mark.parametrize("T", [1, 7, 40])
@pytest.mark.parametrize("blocks", [1, 2, 3, 64])
def test_row_blocked_attention_equals_sdpa(T, blocks):
    torch.manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, 8, requires_grad=True) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    out = matmul_attention(q, k, v, blocks=blocks)
    assert (out - ref).abs().max() <= 1e-5
    gout = torch.randn_like(ref)
    want = torch.autograd.grad(ref, (q, k, v), gout)
    got = torch.autograd.grad(out, (q, k, v), gout)
    assert all((a - b).abs().max() <= 1e-5 for a, b in zip(got, want))
    low = [t.detach().bfloat16() for t in (q, k, v)]  # blocking leaves bf16 results bit-equal
    assert torch.equal(matmul_attention(*low, blocks=blocks), matmul_attention(*low, blocks=1))


@pytest.mark.parametrize("T", [1, 7, 40])
@pytest.mark.parametrize("blocks", [1, 2, 3, 64])  # 64: one query row per block at T=40
def test_fused_attention_from_qkv_equals_sdpa(T, blocks):
    from core.attention import fused_causal_attention

    B, H, D = 2, 3, 8
    torch.manual_seed(T)
    qkv = torch.randn(B, T, 3 * H * D, requires_grad=True)

    def ref(qkv):
        q, k, v = qkv.view(B, T, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        return z.transpose(1, 2).reshape(B, T, H * D)

    want, got = ref(qkv), fused_causal_attention(qkv, H, blocks)
    assert got.shape == (B, T, H * D) and (got - want).abs().max() <= 1e-5
    gout = torch.randn_like(want)
    (g_want,) = torch.autograd.grad(want, qkv, gout)
    (g_got,) = torch.autograd.grad(got, qkv, gout)
    assert (g_got - g_want).abs().max() <= 1e-5
    low = qkv.detach().bfloat16()
    assert (fused_causal_attention(low, H, blocks).float() - want).abs().max() < 0.05


def test_training_forward_takes_the_fused_attention_and_matches_inference():
    """A training-mode forward (fused attention) gives the logits of the SDPA inference path."""
    torch.manual_seed(0)
    model = GPT(preset("tiny"))
    ids = torch.randint(0, model.config.vocab_size, (2, 24))
    train_logits, _ = model(ids)  # grad enabled: attention by matmuls
    with torch.no_grad():
        infer_logits, _ = model(ids)  # SDPA
    assert (train_logits - infer_logits).abs().max() <= 1e-5
