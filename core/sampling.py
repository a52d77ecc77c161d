"""Choosing the next token: the distribution stage by stage, and streaming generation.

`sampling_stages` returns every stage of the next-token distribution as data on one token axis
(softmax of raw logits -> temperature -> top-k -> top-p -> renormalised), so a page can draw
what each knob does. `stream`/`generate` sample from exactly that final distribution (one
implementation, `_final`, serves both), with a KV cache by default and a local torch.Generator
so the same seed gives the same ids and the global RNG is never touched.

Past the context length the model sees a sliding window of the last T tokens at positions
0..T-1, as if the prompt had been cropped: once the window slides, every position's hidden state
changes, so cached keys are stale and each step recomputes the window (identical ids with and
without the cache, a test proves it).

Reference: Holtzman et al. 2019 (nucleus sampling); Fan et al. 2018 (top-k); Raschka, "Build a
Large Language Model (From Scratch)", ch. 5.3.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from core.kvcache import Decoder


class SamplingError(ValueError):
    """Sampling settings out of range (the message says which and why)."""


def validate_sampling(temperature, top_k, top_p, vocab_size) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise SamplingError(f"temperature must be a number, got {temperature!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise SamplingError(f"temperature must be 0 (greedy) or positive, got {temperature}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
            raise SamplingError(f"top_k must be a whole number or None, got {top_k!r}")
        if not 1 <= top_k <= vocab_size:
            raise SamplingError(
                f"top_k must be between 1 and the vocab size {vocab_size}, got {top_k}"
            )
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, int | float):
            raise SamplingError(f"top_p must be a number or None, got {top_p!r}")
        if not 0.0 < top_p <= 1.0:
            raise SamplingError(f"top_p must be in (0, 1], got {top_p}")


def _scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / temperature, shifted so that the largest is 0: the same softmax, but a tiny
    positive temperature (1e-300) sends the others to -inf (greedy, ties shared) instead of
    overflowing every logit to inf and the softmax to NaN."""
    return (logits - logits.max()) / temperature


def _final(logits: torch.Tensor, temperature: float, top_k, top_p, stages: dict | None = None):
    """The distribution generate() samples from, (V,) float64; fills `stages` when given."""
    logits = logits.detach().to("cpu", torch.float64)
    V = logits.shape[0]
    use_k = top_k is not None and top_k < V
    use_p = top_p is not None and top_p < 1.0
    if not (use_k or use_p or temperature == 0 or stages is not None):
        # the common case: no sort needed (and x / 1.0 == x, so skip that pass)
        return torch.softmax(_scaled(logits, temperature) if temperature != 1 else logits, dim=0)
    order = torch.sort(logits, descending=True, stable=True).indices  # ties: lower id first
    if temperature == 0:
        temp = torch.zeros(V, dtype=torch.float64)
        temp[order[0]] = 1.0
    else:
        temp = torch.softmax(_scaled(logits, temperature), dim=0)
    kept_k = torch.ones(V, dtype=torch.bool)
    if use_k:
        kept_k = torch.zeros(V, dtype=torch.bool)
        kept_k[order[:top_k]] = True
    after_k = temp * kept_k
    kept_p = torch.ones(V, dtype=torch.bool)
    if use_p:
        renorm = after_k / after_k.sum()
        ranked = renorm[order]  # descending by logit, same order as probability
        before = torch.cumsum(ranked, 0) - ranked  # mass of the tokens ranked above each one
        kept_p = torch.zeros(V, dtype=torch.bool)
        kept_p[order[(before < top_p) & (ranked > 0)]] = True
        kept_p[order[0]] = True
    after_p = after_k * kept_p
    final = after_p / after_p.sum()
    if stages is not None:
        stages.update(temperature=temp, top_k=after_k, top_p=after_p, final=final,
                      kept_top_k=kept_k, kept_top_p=kept_p)  # fmt: skip
    return final


def _draw(probs: torch.Tensor, gen: torch.Generator) -> int:
    """One id from probs (V,) float64 by inverse CDF: a tenth of torch.multinomial's cost at
    V=4096, and a zero-probability id can never come out (its CDF step is empty). The CDF is a
    sequential float64 sum either way; numpy's calls cost less than torch's at this size."""
    cdf = np.cumsum(probs.numpy())
    u = float(torch.rand(1, generator=gen, dtype=torch.float64)) * cdf[-1]
    return min(int(np.searchsorted(cdf, u, side="right")), probs.shape[0] - 1)


@dataclass
class SamplingStages:
    """Every array is (V,) float64 probabilities on one token axis."""

    raw: np.ndarray  # softmax(logits)
    temperature: np.ndarray  # softmax(logits / T); T == 0 -> one-hot argmax
    top_k: np.ndarray  # temperature stage, tokens outside the top k zeroed (not renormalised)
    top_p: np.ndarray  # top-k stage, tokens outside the nucleus zeroed (not renormalised)
    final: np.ndarray  # renormalised: what generate() samples from
    kept_top_k: np.ndarray  # bool (V,)
    kept_top_p: np.ndarray  # bool (V,)


def sampling_stages(logits_1d, temperature=1.0, top_k=None, top_p=None) -> SamplingStages:
    """Each stage of the next-token distribution for one position's logits (V,)."""
    logits = torch.as_tensor(np.asarray(logits_1d, dtype=np.float64))
    if logits.dim() != 1:
        raise SamplingError(f"logits must be one position (V,), got shape {tuple(logits.shape)}")
    validate_sampling(temperature, top_k, top_p, logits.shape[0])
    s: dict = {}
    _final(logits, temperature, top_k, top_p, s)
    return SamplingStages(
        raw=torch.softmax(logits, 0).numpy(),
        **{k: s[k].numpy() for k in ("temperature", "top_k", "top_p", "final")},
        kept_top_k=s["kept_top_k"].numpy(),
        kept_top_p=s["kept_top_p"].numpy(),
    )


@dataclass
class GenStep:
    position: int  # index of the new token in the full sequence (prompt + new)
    token_id: int
    prob: float  # probability of the chosen id under the final distribution
    top_ids: list[int]  # top-5 alternatives under the final distribution
    top_probs: list[float]


@dataclass
class Generation:
    ids: list[int]  # prompt + new
    new_ids: list[int]
    steps: list[GenStep] = field(default_factory=list)


def _prompt(model, ids) -> list[int]:
    if isinstance(ids, torch.Tensor):
        if ids.dim() == 2 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.dim() != 1:
            raise SamplingError(f"generation takes one sequence, got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    ids = [int(i) for i in ids]
    V = model.config.vocab_size
    if not ids:
        raise SamplingError("the prompt is empty: give at least one token")
    bad = [i for i in ids if not 0 <= i < V]
    if bad:
        raise SamplingError(f"token id {bad[0]} is outside the vocabulary (0..{V - 1})")
    return ids


def stream(model, ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None,
           stop_token=None, use_cache=True) -> Iterator[GenStep]:  # fmt: skip
    """Yield one GenStep per new token. The model is only read (safe to share across threads)."""
    V, T = model.config.vocab_size, model.config.context_length
    validate_sampling(temperature, top_k, top_p, V)
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 0
    ):
        raise SamplingError(f"max_new_tokens must be a whole number >= 0, got {max_new_tokens!r}")
    ids = _prompt(model, ids)
    greedy = temperature == 0 or top_k == 1
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    device = next(model.parameters()).device
    decoder = None

    def next_logits(first: bool) -> torch.Tensor:
        nonlocal decoder
        # grad mode is entered per step (not around the yields), so it never leaks to the caller
        with torch.inference_mode():
            if use_cache and first:
                decoder = Decoder(model)
                return decoder.prefill(torch.tensor([ids[-T:]], dtype=torch.long, device=device))
            if use_cache and decoder.pos < decoder.max_len:
                return decoder.step(ids[-1])
            window = torch.tensor([ids[-T:]], dtype=torch.long, device=device)
            return model.last_logits(window)[0]  # (V,)

    for step in range(max_new_tokens):
        logits = next_logits(step == 0).float().cpu()  # (V,) fp32; .cpu() is free on CPU
        if greedy:
            top_ids = torch.topk(logits, min(5, V)).indices.tolist()
            chosen = int(logits.numpy().argmax())  # the first maximum, as torch.argmax
            prob = 1.0
            top_ids = [chosen] + [i for i in top_ids if i != chosen][:4]
            top_probs = [1.0] + [0.0] * (len(top_ids) - 1)
        else:
            final = _final(logits, temperature, top_k, top_p)
            chosen = _draw(final, gen)
            prob = float(final.numpy()[chosen])
            top = torch.topk(final, min(5, V))
            top_ids, top_probs = top.indices.tolist(), top.values.tolist()
        ids.append(chosen)
        yield GenStep(len(ids) - 1, chosen, prob, top_ids, top_probs)
        if stop_token is not None and chosen == stop_token:
            return


def generate(model, ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None,
             stop_token=None, use_cache=True) -> Generation:  # fmt: skip
    """Generate up to max_new_tokens after ids (stops after stop_token); same seed, same ids."""
    prompt = _prompt(model, ids)
    steps = list(
        stream(
            model, prompt, max_new_tokens, temperature, top_k, top_p, seed, stop_token, use_cache
        )
    )
    new = [s.token_id for s in steps]
    return Generation(ids=prompt + new, new_ids=new, steps=steps)
