"""Causal multi-head self-attention, twice: a fast path and an explicit one.

The fast path hands q, k, v to `scaled_dot_product_attention` (a fused kernel). The explicit
path computes the same thing step by step — scores = q·kᵀ/√D, causal mask (-inf above the
diagonal), softmax, weighted sum of v — and can record every intermediate for the app. A test
proves both give the same output. q, k, v come from one fused projection `qkv` (C -> 3C, laid
out [q | k | v] with heads contiguous, as GPT-2's c_attn).

Reference: Vaswani et al. 2017 §3.2; Raschka, "Build a Large Language Model (From Scratch)", ch. 3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ModelConfig
from core.layers import apply_rope


def explicit_attention(q, k, v, rec=None, prefix: str = "", dropout_p: float = 0.0):
    """Causal attention step by step. q, k, v: (B, H, T, D) -> z: (B, H, T, D).

    Records `scores` (after the mask, -inf above the diagonal), `pattern` and `z` when `rec` is
    given. Assumes q and k cover the same positions (no cache offset).
    """
    T, D = q.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))  # (B, H, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu_(1)  # (T, T) j > i
    scores = scores.masked_fill(future, float("-inf"))
    pattern = torch.softmax(scores, dim=-1)  # (B, H, T, T) rows sum to 1
    weights = F.dropout(pattern, dropout_p) if dropout_p > 0 else pattern
    z = weights @ v  # (B, H, T, D)
    if rec is not None:
        rec.put(prefix + "scores", scores)
        rec.put(prefix + "pattern", pattern)
        rec.put(prefix + "z", z)
    return z


def _causal_bias(T: int, dtype, device) -> torch.Tensor:
    """(T, T) additive mask: 0 on and below the diagonal, -inf above."""
    future = torch.ones(T, T, dtype=torch.bool, device=device).triu_(1)
    return torch.zeros(T, T, dtype=dtype, device=device).masked_fill_(future, float("-inf"))


def matmul_attention(q, k, v, dropout_p: float = 0.0, blocks: int = 2):
    """Causal attention as batched matmuls, the mask and 1/√D fused into the first.

    Used for training and 16-bit: at T=256, D=64 on this CPU, the fused SDPA kernel's bf16
    forward + backward took twice as long as this, and its fp32 one 10% longer.
    The queries are split into `blocks` row blocks and block i only meets the keys it can see,
    [0, end of block i): with 2 blocks the matmuls and softmax cover 3/4 of the T×T square
    instead of all of it (the upper-right quarter is all -inf), at the same results to the bit
    (each row's softmax is over the same keys; the masked ones only ever added zeros).
    Measured here (bf16, 1 thread): forward + backward 17.5 -> 13.1 ms per layer; 3 or more
    blocks were no faster (more, smaller matmuls).
    """
    B, H, T, D = q.shape
    qf, kf, vf = (t.reshape(B * H, T, D) for t in (q, k, v))  # (B·H, T, D)
    bias = _causal_bias(T, q.dtype, q.device)  # (T, T)
    size = -(-T // max(1, blocks))
    out = []
    for s in range(0, T, size):
        e = min(s + size, T)  # queries [s, e) see keys [0, e)
        pattern = _block_pattern(qf, kf, bias, s, e)  # (B·H, e-s, e)
        if dropout_p > 0:
            pattern = F.dropout(pattern, dropout_p)
        out.append(pattern @ vf[:, :e])  # (B·H, e-s, D)
    z = out[0] if len(out) == 1 else torch.cat(out, dim=1)
    return z.view(B, H, T, D)


def _block_pattern(q, k, bias, s: int, e: int) -> torch.Tensor:
    """softmax(q[s:e] k[:e]ᵀ / √D + causal bias): queries [s, e) over the keys they can see.

    q, k: (B·H, T, D); bias: (T, T). Returns (B·H, e-s, e).
    """
    scores = torch.baddbmm(
        bias[s:e, :e].expand(q.shape[0], e - s, e),
        q[:, s:e],
        k[:, :e].transpose(1, 2),
        alpha=1.0 / math.sqrt(q.shape[-1]),
    )
    return torch.softmax(scores, dim=-1)


class _FusedCausalAttention(torch.autograd.Function):
    """qkv (B, T, 3C) -> causal attention -> z (B, T, C), forward and backward by hand.

    The same matmuls as matmul_attention, minus autograd's bookkeeping around them: q, k, v are
    laid out head-major in one copy, the backward writes dq, dk, dv straight into one buffer
    (1/√D folded into those matmuls) and hands qkv its gradient in one copy, where autograd
    through view / permute / unbind / slicing made a copy, a stack or an add at each step.
    """

    @staticmethod
    def forward(ctx, qkv, n_heads: int, blocks: int):
        B, T, C3 = qkv.shape
        H, D = n_heads, C3 // (3 * n_heads)
        heads = qkv.view(B, T, 3, H, D).permute(2, 0, 3, 1, 4).contiguous()  # (3, B, H, T, D)
        q, k, v = heads.view(3, B * H, T, D).unbind(0)  # (B·H, T, D) each, contiguous
        bias = _causal_bias(T, qkv.dtype, qkv.device)
        size = -(-T // max(1, blocks))
        z = torch.empty(B * H, T, D, dtype=qkv.dtype, device=qkv.device)
        patterns = []
        for s in range(0, T, size):
            e = min(s + size, T)  # queries [s, e) see keys [0, e)
            pattern = _block_pattern(q, k, bias, s, e)  # (B·H, e-s, e)
            torch.bmm(pattern, v[:, :e], out=z[:, s:e])  # written in place, no copy
            patterns.append(pattern)
        ctx.save_for_backward(heads, *patterns)
        ctx.dims = (B, T, H, D, size)
        return z.view(B, H, T, D).transpose(1, 2).reshape(B, T, H * D)

    @staticmethod
    def backward(ctx, dz):
        heads, *patterns = ctx.saved_tensors
        B, T, H, D, size = ctx.dims
        q, k, v = heads.view(3, B * H, T, D).unbind(0)
        dzh = dz.view(B, T, H, D).transpose(1, 2).reshape(B * H, T, D)  # (B·H, T, D)
        scale = 1.0 / math.sqrt(D)
        dheads = torch.empty(3, B * H, T, D, dtype=heads.dtype, device=heads.device)
        dq, dk, dv = dheads.unbind(0)
        # last block first: it sees every key, so its products initialise dk and dv whole
        # (beta=0 ignores the empty buffer); earlier blocks add into their key prefix in place
        blocks = list(zip(patterns, range(0, T, size)))[::-1]
        for i, (pattern, s) in enumerate(blocks):
            e = min(s + size, T)
            g = dzh[:, s:e]  # (B·H, e-s, D)
            dscores = torch._softmax_backward_data(
                g @ v[:, :e].transpose(1, 2), pattern, -1, pattern.dtype
            )  # (B·H, e-s, e); zero where masked, as the pattern is
            beta = 0.0 if i == 0 else 1.0
            torch.baddbmm(dv[:, :e], pattern.transpose(1, 2), g, beta=beta, out=dv[:, :e])
            torch.baddbmm(dq[:, s:e], dscores, k[:, :e], beta=0.0, alpha=scale, out=dq[:, s:e])
            torch.baddbmm(
                dk[:, :e], dscores.transpose(1, 2), q[:, s:e], beta=beta, alpha=scale,
                out=dk[:, :e],
            )  # fmt: skip
        dqkv = dheads.view(3, B, H, T, D).permute(1, 3, 0, 2, 4).reshape(B, T, 3 * H * D)
        return dqkv, None, None


def fused_causal_attention(qkv: torch.Tensor, n_heads: int, blocks: int = 2):
    """Causal attention from the fused projection qkv (B, T, 3C, laid out [q | k | v], heads
    contiguous) to z (B, T, C), without dropout or RoPE; `blocks` query row blocks (see
    matmul_attention). Whole bf16 training step here: 1.5-2.5% faster than through autograd.

    Runs in qkv's dtype with autocast off inside: CUDA autocast would run the softmax in fp32
    and hand the bf16 products an fp32 pattern (CPU autocast leaves it alone)."""
    with torch.autocast(qkv.device.type, enabled=False):
        return _FusedCausalAttention.apply(qkv, n_heads, blocks)


class CausalSelfAttention(nn.Module):
    """x (B, T, C) -> heads (B, H, T, D) -> causal attention -> output projection (B, T, C)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)

    def heads(self, x: torch.Tensor, rope=None):
        """q, k, v each (B, H, T, D), RoPE applied to q and k when `rope` = (cos, sin) is given."""
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim)  # (B, T, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, D) each
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def forward(self, x, rope=None, dropout_p: float = 0.0, rec=None, prefix: str = ""):
        B, T, C = x.shape
        if rec is None and rope is None and dropout_p == 0.0 and self._by_matmuls(x):
            return self.proj(fused_causal_attention(self.qkv(x), self.n_heads))
        q, k, v = self.heads(x, rope)
        if rec is None and self._by_matmuls(q):
            z = matmul_attention(q, k, v, dropout_p)
        elif rec is None:
            z = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            rec.put(prefix + "q", q)
            rec.put(prefix + "k", k)
            rec.put(prefix + "v", v)
            z = explicit_attention(q, k, v, rec, prefix, dropout_p)
        out = self.proj(z.transpose(1, 2).reshape(B, T, C))  # (B, T, C)
        if rec is not None:
            rec.put(prefix + "out", out)
        return out

    @staticmethod
    def _by_matmuls(x: torch.Tensor) -> bool:
        """On the CPU, training or 16-bit: attention by matmuls (fp32 forward + backward 23 vs
        26 ms a layer for SDPA's here, bf16 half the time); fp32 inference keeps SDPA (faster
        forward only). On a GPU always SDPA, whose fused flash / memory-efficient kernels the
        matmul route cannot approach (H100, bf16, batch 64: whole training step 1.4x faster)."""
        if x.device.type != "cpu":
            return False
        training = torch.is_grad_enabled() and x.requires_grad
        return training or x.dtype in (torch.bfloat16, torch.float16)

    def forward_cached(self, x, cache_k, cache_v, pos: int, rope=None):
        """Attention for new positions [pos, pos+T) given cached keys/values of [0, pos).

        cache_k, cache_v: (B, H, Tmax, D) preallocated; the new k, v are written in place.
        A prefill (T > 1) must start at pos 0; a decode step has T == 1 and sees every cached key.
        """
        B, T, C = x.shape
        q, k, v = self.heads(x, rope)
        cache_k[:, :, pos : pos + T] = k
        cache_v[:, :, pos : pos + T] = v
        keys, values = cache_k[:, :, : pos + T], cache_v[:, :, : pos + T]  # (B, H, pos+T, D)
        z = F.scaled_dot_product_attention(q, keys, values, is_causal=T > 1)
        return self.proj(z.transpose(1, 2).reshape(B, T, C))
