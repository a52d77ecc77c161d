"""Attention-head role scores: previous-token, first-token sink, induction.

Each score is a mean attention weight, so it lies in [0, 1] and reads as "how much of this
head's attention goes where the role says it should". All three are measured on the same
input: a batch of random token sequences, each repeated twice, `x = [r_0 .. r_{n-1}, r_0 ..
r_{n-1}]` (Olsson et al., "In-context Learning and Induction Heads", 2022). Random tokens
carry no grammar, so only a head that copies structure, not content, scores high.

Definitions, with A the attention pattern (rows = query position t, columns = key position s):

- previous_token = mean over t >= 1 of A[t, t-1]                 (the whole sequence)
- first_token    = mean over t >= 1 of A[t, 0]                   (the "attention sink")
- induction      = mean over t in [n+1, 2n-1] of A[t, t-(n-1)]   (second copy only)

For the induction score: at t = n + j the current token is r_j; it last appeared at j, and the
token that followed it is at j + 1 = t - (n - 1). An induction head attends there, so that the
next layer can copy r_{j+1} as the prediction. Position 0 and t = n are excluded: nothing
before them repeats. When a prefix token (e.g. end-of-text) is put first, all positions
shift by one and the sink is that prefix.
"""

from __future__ import annotations

import numpy as np
import torch

SCORE_NAMES = ("previous_token", "first_token", "induction")


def previous_token_score(pattern: np.ndarray) -> np.ndarray:
    """pattern (..., T, T) -> (...): mean of the sub-diagonal A[t, t-1] for t >= 1."""
    T = pattern.shape[-1]
    idx = np.arange(1, T)
    return pattern[..., idx, idx - 1].mean(axis=-1)


def first_token_score(pattern: np.ndarray, first: int = 0) -> np.ndarray:
    """pattern (..., T, T) -> (...): mean attention to position `first` from t > first."""
    return pattern[..., first + 1 :, first].mean(axis=-1)


def induction_score(pattern: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    """pattern (..., T, T) of a sequence repeated twice (period n, starting at `offset`) -> (...).

    Mean of A[t, t-(n-1)] over the second copy's positions t = offset+n+1 .. offset+2n-1.
    """
    t = np.arange(offset + n + 1, offset + 2 * n)
    return pattern[..., t, t - (n - 1)].mean(axis=-1)


def scores_from_patterns(patterns: np.ndarray, n: int, offset: int = 0) -> dict[str, np.ndarray]:
    """patterns (B, L, H, T, T) or (L, H, T, T) on repeated sequences -> dict of (L, H) scores."""
    if patterns.ndim == 4:
        patterns = patterns[None]
    return {
        "previous_token": previous_token_score(patterns).mean(axis=0),
        "first_token": first_token_score(patterns, first=0).mean(axis=0),
        "induction": induction_score(patterns, n, offset).mean(axis=0),
    }


def repeated_random_tokens(
    vocab_size: int,
    n: int,
    batch: int,
    seed: int = 0,
    prefix_id: int | None = None,
    exclude: tuple[int, ...] = (),
) -> torch.Tensor:
    """(batch, [1 +] 2n) LongTensor: random ids repeated twice, optionally after a prefix id."""
    g = torch.Generator().manual_seed(seed)
    allowed = torch.tensor([i for i in range(vocab_size) if i not in set(exclude)])
    r = allowed[torch.randint(len(allowed), (batch, n), generator=g)]
    ids = torch.cat([r, r], dim=1)  # (B, 2n)
    if prefix_id is not None:
        ids = torch.cat([torch.full((batch, 1), prefix_id), ids], dim=1)
    return ids


@torch.no_grad()
def head_scores(
    model,
    *,
    n: int | None = None,
    batch: int = 8,
    seed: int = 0,
    prefix_id: int | None = None,
    exclude: tuple[int, ...] = (),
) -> dict[str, np.ndarray]:
    """Score every head of `model` (a core.model.GPT) -> {"previous_token"|"first_token"|"induction": (L, H)}.

    n: length of the random half (default: as long as fits, at most 64). prefix_id: a token put
    first (e.g. the tokenizer's end-of-text) so the sink position is a real token; excluded
    ids (special tokens) are never drawn.
    """
    from core.probes import capture

    cfg = model.config
    extra = 1 if prefix_id is not None else 0
    if n is None:
        n = min(64, (cfg.context_length - extra) // 2)
    if 2 * n + extra > cfg.context_length:
        raise ValueError(f"n={n} does not fit the context length {cfg.context_length}")
    excl = tuple(exclude) + ((prefix_id,) if prefix_id is not None else ())
    ids = repeated_random_tokens(cfg.vocab_size, n, batch, seed, prefix_id, excl)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        _, cache = capture(model, ids.to(device), names=["blocks.*.attn.pattern"])
    finally:
        model.train(was_training)
    pats = np.stack(
        [cache[f"blocks.{i}.attn.pattern"].numpy() for i in range(cfg.n_layers)], axis=1
    )  # (B, L, H, T, T)
    s = scores_from_patterns(pats, n, offset=extra)
    if extra:  # with a prefix, the sink is position 0 and the sequence starts at 1
        s["first_token"] = first_token_score(pats, first=0).mean(axis=0)
    return {k: v.astype(np.float32) for k, v in s.items()}


def best_heads(scores: dict[str, np.ndarray]) -> dict[str, tuple[int, int, float]]:
    """For each role, the (layer, head, score) of the head that scores highest."""
    out = {}
    for k, v in scores.items():
        layer, head = np.unravel_index(int(np.argmax(v)), v.shape)
        out[k] = (int(layer), int(head), float(v[layer, head]))
    return out
