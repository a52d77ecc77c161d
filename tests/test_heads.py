"""Head-role scores on hand-built attention patterns, and on a real model's shapes."""

import numpy as np
import pytest
import torch

from core.heads import (
    best_heads,
    first_token_score,
    induction_score,
    previous_token_score,
    repeated_random_tokens,
    scores_from_patterns,
)


def _causal_uniform(T):
    a = np.tril(np.ones((T, T)))
    return a / a.sum(axis=1, keepdims=True)


def _prev_token(T):
    a = np.zeros((T, T))
    a[0, 0] = 1
    a[np.arange(1, T), np.arange(T - 1)] = 1
    return a


def _sink(T):
    a = np.zeros((T, T))
    a[:, 0] = 1
    return a


def _induction(n):
    """Ideal induction head on a length-2n repeated sequence: second copy looks at j+1."""
    T = 2 * n
    a = _sink(T)
    for t in range(n + 1, T):
        a[t] = 0
        a[t, t - (n - 1)] = 1
    return a


def test_each_hand_built_head_scores_one_on_its_role_only():
    n = 8
    heads = np.stack([_prev_token(2 * n), _sink(2 * n), _induction(n)])[None]  # (L=1, H=3, T, T)
    s = scores_from_patterns(heads, n)
    # the sink and the induction head each hit t-1 once (at t = 1, where t-1 is the sink)
    assert s["previous_token"][0].tolist() == pytest.approx([1.0, 1 / (2 * n - 1), 1 / (2 * n - 1)])
    assert s["first_token"][0, 1] == 1.0
    assert s["induction"][0].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert s["first_token"][0, 2] == pytest.approx(n / (2 * n - 1))  # sink until the repeat


def test_uniform_attention_scores_low():
    T = 32
    a = _causal_uniform(T)
    assert previous_token_score(a) < 0.2
    assert induction_score(a, n=16) < 0.1
    assert first_token_score(a) < 0.2


def test_prefix_offset_shifts_the_induction_diagonal():
    n = 6
    base = _induction(n)
    shifted = np.zeros((2 * n + 1, 2 * n + 1))
    shifted[1:, 1:] = base
    shifted[0, 0] = 1
    assert induction_score(shifted, n, offset=1) == pytest.approx(1.0)


def test_repeated_random_tokens_repeat_and_skip_excluded_ids():
    ids = repeated_random_tokens(50, n=10, batch=3, seed=0, prefix_id=49, exclude=(49, 0))
    assert ids.shape == (3, 21)
    assert (ids[:, 0] == 49).all()
    assert torch.equal(ids[:, 1:11], ids[:, 11:])
    assert not ((ids[:, 1:] == 49) | (ids[:, 1:] == 0)).any()
    assert torch.equal(ids, repeated_random_tokens(50, 10, 3, 0, 49, (49, 0)))


def test_best_heads_picks_the_argmax():
    s = {"induction": np.array([[0.1, 0.2], [0.9, 0.3]])}
    assert best_heads(s)["induction"] == (1, 0, pytest.approx(0.9))


def test_head_scores_on_a_model_are_in_range():
    from core.config import preset
    from core.heads import head_scores
    from core.model import GPT

    torch.manual_seed(0)
    model = GPT(preset("tiny"))
    s = head_scores(model, batch=2, prefix_id=0, exclude=(0,))
    for k in ("previous_token", "first_token", "induction"):
        assert s[k].shape == (2, 4)
        assert ((s[k] >= 0) & (s[k] <= 1)).all()
