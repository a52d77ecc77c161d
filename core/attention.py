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
        scores = torch.baddbmm(
            bias[s:e, :e].expand(B * H, e - s, e),
            qf[:, s:e],
            kf[:, :e].transpose(1, 2),
            alpha=1.0 / math.sqrt(D),
        )  # (B·H, e-s, e)
        pattern = torch.softmax(scores, dim=-1)
        if dropout_p > 0:
            pattern = F.dropout(pattern, dropout_p)
        out.append(pattern @ vf[:, :e])  # (B·H, e-s, D)
    z = out[0] if len(out) == 1 else torch.cat(out, dim=1)
    return z.view(B, H, T, D)


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
        q, k, v = self.heads(x, rope)
        if rec is None and (
            q.dtype in (torch.bfloat16, torch.float16)
            or (q.requires_grad and torch.is_grad_enabled())
        ):  # training, or 16-bit: the row-blocked matmuls (fp32 forward + backward 23 vs 26 ms
            # a layer for SDPA's here); fp32 inference keeps SDPA (faster without backward)
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
