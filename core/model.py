"""The GPT model, written from parts: token + position embedding, a stack of transformer blocks
(norm, causal attention, norm, MLP, each around the residual stream), a final norm, the LM head.

`forward` is the fast path: SDPA's fused kernel for fp32 inference, attention by matmuls with a
hand-written backward for training and 16-bit (core/attention.py), and with
`return_logits=False` the LM head and loss fused so that training never holds the B·T·V logits
(core/layers.py). With a `recorder` (see core/probes.py) the same forward takes the explicit
attention path and hands every named intermediate to the recorder, so one shared model object
can be traced by many threads at once.
`forward_cached` runs positions against a KVCache for generation.

Reference: Radford et al. 2019 (GPT-2); nanoGPT's model.py; Raschka, "Build a Large Language
Model (From Scratch)", ch. 4.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.attention import CausalSelfAttention
from core.config import ModelConfig
from core.kvcache import KVCache
from core.layers import (
    MLP,
    cross_entropy,
    linear_cross_entropy,
    make_norm,
    rope_tables,
    sinusoidal_table,
)


def _drop(x: torch.Tensor, p: float) -> torch.Tensor:
    return F.dropout(x, p) if p > 0 else x


class Block(nn.Module):
    """One transformer block; pre-norm x + f(norm(x)) or post-norm norm(x + f(x))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pre_norm = config.norm_position == "pre"
        self.ln1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x, rope=None, dropout_p: float = 0.0, rec=None, prefix: str = ""):
        if rec is not None:
            rec.put(prefix + "resid_pre", x)
        if self.pre_norm:
            h = self.ln1(x)
            if rec is not None:
                rec.put(prefix + "ln1.out", h)
            x = x + _drop(self.attn(h, rope, dropout_p, rec, prefix + "attn."), dropout_p)
            if rec is not None:
                rec.put(prefix + "resid_mid", x)
            h = self.ln2(x)
            if rec is not None:
                rec.put(prefix + "ln2.out", h)
            x = x + _drop(self.mlp(h, rec, prefix + "mlp."), dropout_p)
        else:
            a = self.attn(x, rope, dropout_p, rec, prefix + "attn.")
            x = self.ln1(x + _drop(a, dropout_p))
            if rec is not None:
                rec.put(prefix + "ln1.out", x)
                rec.put(prefix + "resid_mid", x)
            x = self.ln2(x + _drop(self.mlp(x, rec, prefix + "mlp."), dropout_p))
            if rec is not None:
                rec.put(prefix + "ln2.out", x)
        if rec is not None:
            rec.put(prefix + "resid_post", x)
        return x

    def forward_cached(self, x, cache_k, cache_v, pos: int, rope=None):
        if self.pre_norm:
            x = x + self.attn.forward_cached(self.ln1(x), cache_k, cache_v, pos, rope)
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn.forward_cached(x, cache_k, cache_v, pos, rope))
        return self.ln2(x + self.mlp(x))


class GPT(nn.Module):
    """ids (B, T) -> logits (B, T, V), plus the mean cross-entropy loss when targets are given."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        C, T = config.d_model, config.context_length
        self.tok_emb = nn.Embedding(config.vocab_size, C)
        if config.pos_encoding == "learned":
            self.pos_emb = nn.Embedding(T, C)
        elif config.pos_encoding == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_table(T, C), persistent=False)
        elif config.pos_encoding == "rope":
            cos, sin = rope_tables(T, config.head_dim, config.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)  # (T, D/2)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = make_norm(config)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init (N(0, 0.02), residual projections ÷√(2L)) or Xavier-uniform linears."""
        cfg = self.config
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                if module is self.lm_head and cfg.tie_embeddings:
                    continue
                if cfg.init == "xavier":
                    nn.init.xavier_uniform_(module.weight)
                else:
                    std = 0.02
                    if name.endswith("attn.proj") or name.endswith("mlp.proj"):
                        # each block adds two branches to the residual stream; keep its
                        # variance from growing with depth (GPT-2 paper §2.3)
                        std = 0.02 / math.sqrt(2 * cfg.n_layers)
                    nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, nn.LayerNorm | nn.RMSNorm):
                module.reset_parameters()

    def num_params(self) -> int:
        """Every trainable number, shared (tied) matrices counted once."""
        return sum(p.numel() for p in self.parameters())

    def _rope(self, start: int, T: int):
        if self.config.pos_encoding != "rope":
            return None
        return self.rope_cos[start : start + T], self.rope_sin[start : start + T]  # (T, D/2)

    def embed(self, ids: torch.Tensor, start: int = 0, rec=None) -> torch.Tensor:
        """Token (+ position) embedding of ids (B, T) at positions [start, start+T) -> (B, T, C)."""
        T = ids.shape[1]
        if start + T > self.config.context_length:
            raise ValueError(
                f"sequence of {start + T} positions is longer than context_length="
                f"{self.config.context_length}; crop it first"
            )
        x = self.tok_emb(ids)  # (B, T, C)
        if rec is not None:
            rec.put("embed.tok", x)
        enc = self.config.pos_encoding
        if enc == "learned" or enc == "sinusoidal":
            table = self.pos_emb.weight if enc == "learned" else self.pos_table
            pos = table[start : start + T]  # (T, C)
            if rec is not None:
                rec.put("embed.pos", pos.expand_as(x).clone())  # a copy: never hand out the table
            x = x + pos
        return x

    def _trunk(self, ids: torch.Tensor, p: float = 0.0, rec=None) -> torch.Tensor:
        """Embedding and every block: the residual stream after the last block (B, T, C)."""
        x = _drop(self.embed(ids, 0, rec), p)
        rope = self._rope(0, ids.shape[1])
        for i, block in enumerate(self.blocks):
            x = block(x, rope, p, rec, f"blocks.{i}." if rec is not None else "")
        return x

    def last_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits of the last position only (B, V), fast path, never dropout: for generation."""
        return self.lm_head(self.ln_f(self._trunk(ids)[:, -1]))

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None, *, recorder=None,
                return_logits: bool = True):  # fmt: skip
        """Logits (B, T, V) for every position and the loss (or None).

        recorder: an object with `put(name, tensor)` (core.probes); with one, attention takes the
        explicit path and dropout is off, so the model is only read, never changed.
        return_logits=False (with targets): logits are None, and the LM head and loss run fused
        without ever holding all B·T·V logits (what training wants: it reads only the loss).
        """
        B, T = ids.shape
        p = self.config.dropout if (self.training and recorder is None) else 0.0
        x = self.ln_f(self._trunk(ids, p, recorder))
        if targets is not None and recorder is None:
            loss, logits = linear_cross_entropy(
                x.reshape(B * T, -1), self.lm_head.weight, targets.reshape(B * T),
                keep_logits=return_logits,
            )  # fmt: skip
            return (logits.view(B, T, -1) if logits is not None else None), loss
        logits = self.lm_head(x)  # (B, T, V)
        if recorder is not None:
            recorder.put("ln_f.out", x)
            recorder.put("logits", logits)
        loss = None
        if targets is not None:
            loss = cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss

    def new_cache(self, batch: int = 1, dtype: torch.dtype | None = None) -> KVCache:
        """An empty KV cache sized for the full context."""
        dtype = dtype or self.tok_emb.weight.dtype
        return KVCache(self.config, batch, dtype=dtype, device=self.tok_emb.weight.device)

    def forward_cached(self, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Run ids (B, T) at positions [cache.pos, cache.pos+T); logits of the last one (B, V).

        A prefill (T > 1) needs an empty cache. Call under torch.inference_mode().
        """
        T = ids.shape[1]
        if T > 1 and cache.pos != 0:
            raise ValueError("a multi-token prefill needs an empty cache")
        start = cache.pos
        if start + T > cache.max_len:
            raise ValueError(f"KV cache full: {start} + {T} positions > {cache.max_len}")
        x = self.embed(ids, start)
        rope = self._rope(start, T)
        for i, block in enumerate(self.blocks):
            x = block.forward_cached(x, cache.k[i], cache.v[i], start, rope)
        cache.pos = start + T
        return self.lm_head(self.ln_f(x[:, -1]))  # (B, V)
