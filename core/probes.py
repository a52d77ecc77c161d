"""Probes: named activations captured from one forward call.

Names come from the module tree, TransformerLens-style (`blocks.2.attn.pattern`). Capture is
scoped to a single call: a `Recorder` is passed down through `GPT.forward` as an argument, so
nothing is attached to the model — no hooks, no module attributes — and one shared model object
can serve many threads capturing different names at the same time. With a recorder the model
takes the explicit attention path (to have scores and pattern to record); a test proves its
logits equal the fast path's.

Reference: Nanda & Bloom, TransformerLens (hook-point naming), here without hooks.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import torch

from core.config import ModelConfig

_ATTN = ("q", "k", "v", "scores", "pattern", "z", "out")
_MLP = ("pre", "post", "out")


class ProbeError(ValueError):
    """A requested probe name or pattern matches nothing."""


def probe_names(config: ModelConfig) -> list[str]:
    """Every probe name of a model with this config, in forward order."""
    names = ["embed.tok"]
    if config.pos_encoding in ("learned", "sinusoidal"):
        names.append("embed.pos")
    for i in range(config.n_layers):
        b = f"blocks.{i}."
        attn = [b + "attn." + s for s in _ATTN]
        mlp = [b + "mlp." + s for s in _MLP]
        if config.norm_position == "pre":
            names += [b + "resid_pre", b + "ln1.out", *attn, b + "resid_mid", b + "ln2.out"]
            names += [*mlp, b + "resid_post"]
        else:
            names += [b + "resid_pre", *attn, b + "ln1.out", b + "resid_mid", *mlp]
            names += [b + "ln2.out", b + "resid_post"]
    return names + ["ln_f.out", "logits"]


def select_names(config: ModelConfig, names: Iterable[str] | str | None) -> list[str]:
    """Resolve exact names and fnmatch globs against the full list (forward order kept)."""
    every = probe_names(config)
    if names is None:
        return every
    if isinstance(names, str):
        names = [names]
    wanted: set[str] = set()
    for pattern in names:
        hits = fnmatch.filter(every, pattern)
        if not hits:
            raise ProbeError(
                f"no probe named {pattern!r} in this model; names look like "
                f"'embed.tok', 'blocks.0.attn.pattern', 'blocks.*.mlp.post', 'logits'"
            )
        wanted.update(hits)
    return [n for n in every if n in wanted]


class Recorder:
    """Collects the wanted activations of one forward call as detached float32 CPU tensors."""

    def __init__(self, wanted: Iterable[str]):
        self.wanted = frozenset(wanted)
        self.out: dict[str, torch.Tensor] = {}

    def put(self, name: str, tensor: torch.Tensor) -> None:
        if name in self.wanted:
            # contiguous() copies views (q/k/v slices, the broadcast position table) so no
            # returned tensor shares memory with the model's parameters
            self.out[name] = tensor.detach().to("cpu", torch.float32).contiguous()


def _as_batch(ids) -> torch.Tensor:
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)  # (1, T)
    if ids.dim() != 2:
        raise ValueError(f"ids must be (T,) or (B, T), got shape {tuple(ids.shape)}")
    return ids


def capture(model, ids, names: Iterable[str] | str | None = None):
    """Run one forward pass and return (logits (B, T, V), {name: tensor}) for the chosen names.

    ids: list of ints, (T,) or (B, T). names: exact names or globs (`"blocks.*.attn.pattern"`),
    None for every name. The model is only read: safe to call from many threads at once.
    """
    wanted = select_names(model.config, names)
    device = next(model.parameters()).device
    rec = Recorder(wanted)
    with torch.no_grad():
        logits, _ = model(_as_batch(ids).to(device), recorder=rec)
    trace = {n: rec.out[n] for n in wanted}
    return logits.detach().to("cpu", torch.float32), trace
