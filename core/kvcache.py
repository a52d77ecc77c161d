"""A preallocated key/value cache for generation: prefill once, then one token per step.

Without a cache every new token re-runs attention over the whole prefix (O(T²) per token);
with it, each step computes q, k, v for the one new position and attends over stored keys.
The tensors are allocated once at full size so a decode step allocates nothing for the cache.

Reference: Pope et al. 2022, "Efficiently Scaling Transformer Inference" §2; Raschka,
"Build a Large Language Model (From Scratch)", bonus material on KV caches.
"""

from __future__ import annotations

import torch

from core.config import ModelConfig


class KVCache:
    """Keys and values of every layer, k and v each (L, B, H, Tmax, D); `pos` positions filled."""

    def __init__(
        self,
        config: ModelConfig,
        batch: int = 1,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        self.max_len = max_len or config.context_length
        shape = (config.n_layers, batch, config.n_heads, self.max_len, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.pos = 0

    def reset(self) -> None:
        """Forget every position (the tensors are reused, not cleared)."""
        self.pos = 0

    @property
    def free(self) -> int:
        """Positions still available before the cache is full."""
        return self.max_len - self.pos
