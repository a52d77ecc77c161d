"""The small parts a transformer block is built from: norms, the feed-forward MLP, and the
position encodings (learned table, fixed sinusoids, rotary).

Reference: Vaswani et al. 2017 (sinusoidal positions, post-norm); Radford et al. 2019 (GPT-2:
pre-norm, tanh-approximated GELU, learned positions); Zhang & Sennrich 2019 (RMSNorm);
Shazeer 2020 (SwiGLU); Su et al. 2021 (RoPE, here in the "rotate half" layout of GPT-NeoX).
Raschka, "Build a Large Language Model (From Scratch)", ch. 4.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ModelConfig


def make_norm(config: ModelConfig) -> nn.Module:
    """LayerNorm (with a bias when config.bias) or RMSNorm over the last axis C."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.d_model, eps=config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)


class MLP(nn.Module):
    """Position-wise feed-forward: C -> F -> C with gelu / relu, or SwiGLU (silu(gate) * up).

    For SwiGLU `fc` holds the gate and up projections stacked (C -> 2F) so one matmul does both.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.activation = config.activation
        self.ff = config.ff_dim
        width = 2 * self.ff if self.activation == "swiglu" else self.ff
        self.fc = nn.Linear(config.d_model, width, bias=config.bias)
        self.proj = nn.Linear(self.ff, config.d_model, bias=config.bias)

    def act(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre, post): the hidden before and after the non-linearity, both (B, T, F)."""
        if self.activation == "swiglu":
            gate, up = h.split(self.ff, dim=-1)  # (B, T, F) each
            return gate, F.silu(gate) * up
        if self.activation == "relu":
            return h, F.relu(h)
        return h, F.gelu(h, approximate="tanh")

    def forward(self, x: torch.Tensor, rec=None, prefix: str = "") -> torch.Tensor:
        pre, post = self.act(self.fc(x))  # (B, T, F)
        out = self.proj(post)  # (B, T, C)
        if rec is not None:
            rec.put(prefix + "pre", pre)
            rec.put(prefix + "post", post)
            rec.put(prefix + "out", out)
        return out


def sinusoidal_table(context_length: int, d_model: int) -> torch.Tensor:
    """(T, C) fixed positions: sin on even channels, cos on odd, wavelengths 2π..10000·2π."""
    pos = torch.arange(context_length, dtype=torch.float64)[:, None]  # (T, 1)
    freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model)
    )  # (C/2,)
    table = torch.zeros(context_length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table.float()


def rope_tables(
    context_length: int, head_dim: int, base: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (T, D/2): angle of position t on channel pair i is t / base^(2i/D)."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (D/2,)
    angles = torch.arange(context_length, dtype=torch.float64)[:, None] * inv  # (T, D/2)
    return torch.cos(angles).float(), torch.sin(angles).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + D/2) of x (B, H, T, D) by the angles of positions (T, D/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (B, H, T, D/2) each
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy over rows of logits (N, V) in any float dtype, fp32 inside.

    F.cross_entropy on bf16 logits first materialises an fp32 copy, its log-softmax, and in
    backward a gradient of each — many passes over N·V numbers. Here the forward works on a
    block of rows at a time (small enough to stay in cache) with torch's fused softmax kernel
    (fp32 inside, faster than separate max/exp/sum/divide passes: 0.20 vs 0.42 ms per 64×4096
    block here), keeps the softmax in the logits' dtype, and the loss of a row is -log p(target)
    (= logsumexp - logit, exactly, up to float rounding). Rows whose target probability is
    too small for that (below 1e-30: a logit margin past ~69) take the logsumexp route instead.
    The backward is one multiply plus a scatter: softmax - onehot, scaled.
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index: int, rows: int):
        N = logits.shape[0]
        probs = torch.empty_like(logits)  # (N, V) softmax, in the logits' dtype
        valid = targets != ignore_index
        safe = torch.where(valid, targets, 0)
        picked = torch.empty(N, dtype=torch.float32, device=logits.device)  # p(target), fp32
        for s in range(0, N, rows):
            p = torch.softmax(logits[s : s + rows], dim=-1, dtype=torch.float32)  # (rows, V)
            picked[s : s + rows] = p.gather(1, safe[s : s + rows, None])[:, 0]
            probs[s : s + rows] = p
        nll = -picked.log()  # (N,)
        tiny = (picked < 1e-30).nonzero()[:, 0]
        if tiny.numel():  # -log of a (sub)underflowing probability loses digits: exact route
            x = logits[tiny].float()
            nll[tiny] = torch.logsumexp(x, dim=-1) - x.gather(1, safe[tiny, None])[:, 0]
        count = valid.sum()
        loss = (nll * valid).sum() / count.clamp(min=1)
        ctx.save_for_backward(probs, safe, valid, count)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        probs, safe, valid, count = ctx.saved_tensors
        row_scale = (valid * (grad_loss / count.clamp(min=1))).to(probs.dtype)  # (N,)
        grad = probs * row_scale[:, None]
        rows = torch.arange(probs.shape[0], device=probs.device)
        grad.index_put_((rows, safe), -row_scale, accumulate=True)  # - onehot
        return grad, None, None, None


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100,
                  rows: int = 64) -> torch.Tensor:  # fmt: skip
    """Mean cross-entropy of logits (N, V) against targets (N,), skipping ignore_index."""
    return _ChunkedCrossEntropy.apply(logits, targets, ignore_index, rows)


class _LinearCrossEntropy(torch.autograd.Function):
    """LM head and mean cross-entropy in one (N, V) buffer: loss of x (N, C) @ wᵀ.

    Unfused, the head writes the (N, V) logits, the loss reads them back, keeps a softmax of
    the same size for backward, and backward scales it, scatters the one-hot and multiplies it
    twice — each pass a full trip through memory for the largest tensors of the step. Here one
    matmul writes the logits into the buffer that becomes the gradient (one large matmul beats
    blocks of rows here: 2-3 % of an fp32 step, ~1-2 % of a bf16 one), then each block of
    `rows` rows is soft-maxed (fp32 at least, in a block-sized temporary) and turned in place
    into its gradient, softmax - onehot in the compute dtype (rounded once), which backward
    multiplies by w and x (two large matmuls, as unfused); the 1/count of the mean and the
    incoming gradient are scalars, applied to those small results. Logits get their own buffer
    only when the caller wants them (`keep_logits`); with neither logits nor gradient wanted
    (evaluation), the matmul runs block by block and memory stays O(rows·V).
    """

    @staticmethod
    def forward(ctx, x, weight, targets, ignore_index: int, rows: int, dtype, keep_logits: bool,
                need_grad: bool):  # fmt: skip
        ctx.set_materialize_grads(False)
        xc, wc = x.to(dtype), weight.to(dtype)  # (N, C), (V, C) in the compute dtype
        N, V = x.shape[0], weight.shape[0]
        valid = targets != ignore_index
        safe = torch.where(valid, targets, 0)  # (N,)
        count = valid.sum().clamp(min=1)
        every_row = bool(valid.all())
        logits = torch.empty(N, V, dtype=dtype, device=x.device) if keep_logits else None
        grad = torch.empty(N, V, dtype=dtype, device=x.device) if need_grad else None
        acc = torch.promote_types(dtype, torch.float32)  # softmax precision: >= fp32
        nll = torch.empty(N, dtype=acc, device=x.device)
        whole = logits if keep_logits else grad  # where the logits go, if anywhere
        if whole is not None:
            torch.mm(xc, wc.t(), out=whole)  # (N, V)
        for s in range(0, N, rows):
            e = min(s + rows, N)
            block = whole[s:e] if whole is not None else xc[s:e] @ wc.t()
            p = torch.softmax(block, dim=-1, dtype=acc)  # (r, V)
            picked = p.gather(1, safe[s:e, None])[:, 0]  # (r,) p(target)
            nll[s:e] = -picked.log()
            tiny = (picked < 1e-30).nonzero()[:, 0]
            if tiny.numel():  # -log of a (sub)underflowing probability loses digits
                z = block[tiny].to(acc)
                nll[s + tiny] = torch.logsumexp(z, dim=-1) - z.gather(1, safe[s + tiny, None])[:, 0]
            if need_grad:
                g = grad[s:e].copy_(p)  # softmax, rounded once
                g[torch.arange(e - s, device=x.device), safe[s:e]] = (picked - 1.0).to(dtype)
                if not every_row:
                    g.masked_fill_(~valid[s:e, None], 0.0)  # ignored rows: no gradient
        loss = (nll * valid).sum() / count
        if need_grad:
            ctx.save_for_backward(xc, wc, grad, count)
        ctx.dtypes = (x.dtype, weight.dtype)
        if keep_logits:
            return loss, logits
        return loss, torch.empty(0, dtype=dtype, device=x.device)

    @staticmethod
    def backward(ctx, grad_loss, grad_logits):
        xc, wc, grad, count = ctx.saved_tensors
        post = None  # a scalar for the small results
        if grad_logits is None:
            if grad_loss is None:
                return (None,) * 8
            g, post = grad, grad_loss / count
        elif grad_loss is None:
            g = grad_logits
        else:  # the caller used the logits too: d/d logits of both terms
            g = (grad.float() * (grad_loss / count) + grad_logits.float()).to(grad.dtype)
        out = []
        for needed, grad_in, dtype in (
            (ctx.needs_input_grad[0], lambda: g @ wc, ctx.dtypes[0]),  # dx (N, C)
            (ctx.needs_input_grad[1], lambda: g.t() @ xc, ctx.dtypes[1]),  # dw (V, C)
        ):
            d = grad_in().to(dtype) if needed else None
            if d is not None and post is not None:
                d = d * post
            out.append(d)
        return (*out, None, None, None, None, None, None)


def linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = -100, rows: int = 256,
                         keep_logits: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """(mean cross-entropy of x (N, C) @ weightᵀ against targets (N,), logits (N, V) or None).

    The same numbers as `F.linear` then `cross_entropy`, in the dtype autocast would use for
    the matmul (bf16 under CPU autocast, else x's dtype); the logits are differentiable too.
    The fused path is the CPU's; on a GPU this is `F.linear` + `F.cross_entropy` (its fused
    kernels win there, and the row loop's host syncs would stall the device).
    """
    dev = x.device.type
    if dev != "cpu":  # GPUs: torch's own fused kernels, no per-block loop or host syncs
        logits = F.linear(x, weight)  # (N, V), in autocast's dtype where it is on
        valid = (targets != ignore_index).sum().clamp(min=1)  # all ignored: 0, as on the CPU
        loss = F.cross_entropy(logits.float(), targets, ignore_index=ignore_index, reduction="sum")
        return loss / valid, (logits if keep_logits else None)
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    need_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    with torch.autocast(dev, enabled=False):
        loss, logits = _LinearCrossEntropy.apply(
            x, weight, targets, ignore_index, rows, dtype, keep_logits, need_grad
        )
    return loss, (logits if keep_logits else None)
