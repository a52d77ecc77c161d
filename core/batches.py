"""Training batches: random windows of the corpus, some optionally turned into repeated spans.

A step's *global* batch is drawn from one seeded generator identically on every process, and
each process takes its slice, so the data (and the loss curve) does not depend on how many
processes share the work, and the data position is just the generator's state.

Repeated spans: with `repeat_fraction` > 0, that share of windows is a span of p tokens
(8 <= p <= T/2) repeated to fill the window; with `repeat_random` > 0, that share of those spans
is uniform random tokens instead of corpus text. The second copy of a span is predictable only by
looking back at the first — what induction heads do (Olsson et al. 2022, "In-context Learning
and Induction Heads"). A templated corpus alone never needs them (a name can be found by its
category), and a random span can be predicted by nothing else at all.
"""

from __future__ import annotations

import torch


def draw_batch(
    gen: torch.Generator,
    n_ids: int,
    seq_len: int,
    batch: int,
    *,
    repeat_fraction: float = 0.0,
    repeat_random: float = 0.0,
    vocab_size: int = 0,
):
    """-> starts (B,), periods (B,) (0 = plain text) and random_ids (B, T+1) or None.

    random_ids holds -1 in rows that keep corpus text. Draws nothing extra when the repeat
    options are 0, so plain runs consume the generator exactly as before.
    """
    T, B = seq_len, batch
    starts = torch.randint(0, n_ids - T, (B,), generator=gen)
    periods = torch.zeros(B, dtype=torch.long)
    random_ids = None
    if repeat_fraction > 0:
        chosen = torch.rand(B, generator=gen) < repeat_fraction
        lengths = torch.randint(8, max(9, T // 2 + 1), (B,), generator=gen)
        periods = torch.where(chosen, lengths, periods)
        if repeat_random > 0:
            rand_row = chosen & (torch.rand(B, generator=gen) < repeat_random)
            random_ids = torch.randint(0, vocab_size, (B, T + 1), generator=gen)
            random_ids[~rand_row] = -1
    return starts, periods, random_ids


def make_windows(ids: torch.Tensor, starts, seq_len: int, periods=None, random_ids=None):
    """Inputs and next-token targets, each (B, T), for windows starting at `starts`."""
    offsets = torch.arange(seq_len + 1)[None, :].expand(len(starts), -1)  # (B, T+1)
    if periods is not None and bool((periods > 0).any()):
        p = periods[:, None]
        offsets = torch.where(p > 0, offsets % p.clamp(min=1), offsets)
    w = ids[starts[:, None] + offsets].long()  # (B, T+1); ids may be stored as uint16
    if random_ids is not None:
        rand_row = random_ids[:, :1] >= 0  # (B, 1)
        w = torch.where(rand_row, random_ids.gather(1, offsets), w)
    return w[:, :-1], w[:, 1:]
