"""Reading a forward pass: logit lens, per-token loss, residual norms, MLP neurons, norm
statistics, and one attention head worked through step by step.

Everything here takes a trace from `core.probes.capture` (plus the model where the final norm and
LM head are needed) and returns plain numpy arrays or records, so the app's pages only draw.

Logit lens (nostalgebraist 2020): decode the residual stream after each sub-layer with the
model's own final norm and unembedding, as if the network stopped there. It shows at which layer
the eventual prediction appears.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


def inside_trace(model, ids) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One traced forward pass over `ids` (list[int] or (T,) / (1, T)) with every probe."""
    from core.probes import capture

    x = torch.as_tensor(ids, dtype=torch.long)
    if x.ndim == 1:
        x = x[None]  # (1, T)
    with torch.no_grad():
        return capture(model, x)


def n_layers(trace: dict) -> int:
    return 1 + max(int(k.split(".")[1]) for k in trace if k.startswith("blocks."))


# --------------------------------------------------------------------------- logit lens


@dataclass
class LensGrid:
    """Top prediction at every stage (2 per layer: after attention, after MLP) x position."""

    stages: list[str]  # (S,) e.g. "L0 attn", "L0 mlp", ...
    top_ids: np.ndarray  # (S, T) int64
    top_probs: np.ndarray  # (S, T) float32
    target_probs: np.ndarray  # (S, T) float32: prob of the actual next token (nan at the end)
    final_ids: np.ndarray  # (T,) the model's real prediction (argmax of the logits)


def logit_lens(model, trace: dict, ids, batch: int = 0) -> LensGrid:
    """Decode resid_mid ("after attention") and resid_post ("after MLP") of every layer through
    ln_f + lm_head. The last stage equals the model's own logits (pre-norm models)."""
    ids = np.asarray(ids).reshape(-1)
    L = n_layers(trace)
    stages, tops, probs, tprobs = [], [], [], []
    nxt = torch.as_tensor(ids[1:], dtype=torch.long)
    w = model.lm_head.weight  # the trace is CPU fp32; the model may be bf16 or on a GPU
    with torch.no_grad():
        for i in range(L):
            for tag, probe in (("attn", "resid_mid"), ("mlp", "resid_post")):
                resid = trace[f"blocks.{i}.{probe}"][batch].to(w.device, w.dtype)  # (T, C)
                logits = model.lm_head(model.ln_f(resid)).float().cpu()  # (T, V)
                p = torch.softmax(logits, dim=-1)
                top_p, top_i = p.max(dim=-1)
                tp = torch.full((len(ids),), float("nan"))
                tp[:-1] = p[:-1].gather(1, nxt[:, None])[:, 0]
                stages.append(f"L{i} {tag}")
                tops.append(top_i.numpy())
                probs.append(top_p.numpy())
                tprobs.append(tp.numpy())
    final = trace["logits"][batch].argmax(dim=-1).numpy()
    return LensGrid(
        stages,
        np.stack(tops).astype(np.int64),
        np.stack(probs).astype(np.float32),
        np.stack(tprobs).astype(np.float32),
        final.astype(np.int64),
    )


# --------------------------------------------------------------------------- loss and norms


def token_losses(logits: torch.Tensor, ids, batch: int = 0) -> np.ndarray:
    """Cross-entropy of each next token: (T,) float32; entry t is the loss of predicting ids[t]
    from ids[:t], so entry 0 (nothing to predict it from) is nan."""
    ids = torch.as_tensor(np.asarray(ids).reshape(-1), dtype=torch.long)
    lg = logits[batch] if logits.ndim == 3 else logits  # (T, V)
    out = np.full(len(ids), np.nan, dtype=np.float32)
    if len(ids) > 1:
        logp = torch.log_softmax(lg[:-1].float(), dim=-1)  # (T-1, V)
        out[1:] = (-logp.gather(1, ids[1:, None])[:, 0]).numpy()
    return out


def residual_norms(trace: dict, batch: int = 0) -> tuple[list[str], np.ndarray]:
    """L2 norm over C of the residual stream: stages ("embed", "L0 attn", "L0 mlp", ...) x T."""
    L = n_layers(trace)
    names = [("embed", "blocks.0.resid_pre")]
    for i in range(L):
        names += [(f"L{i} attn", f"blocks.{i}.resid_mid"), (f"L{i} mlp", f"blocks.{i}.resid_post")]
    norms = np.stack([trace[p][batch].norm(dim=-1).numpy() for _, p in names])  # (S, T)
    return [n for n, _ in names], norms.astype(np.float32)


def norm_stats(model, trace: dict, batch: int = 0) -> list[dict]:
    """One record per norm layer: RMS of its input and output over positions, and its gain."""
    cfg = model.config
    L = n_layers(trace)
    pre = getattr(cfg, "norm_position", "pre") == "pre"
    rows = []
    layers = [(f"blocks.{i}.ln1", f"blocks.{i}.resid_pre") for i in range(L)]
    layers += [(f"blocks.{i}.ln2", f"blocks.{i}.resid_mid") for i in range(L)]
    layers = sorted(layers, key=lambda t: (int(t[0].split(".")[1]), t[0]))
    layers.append(("ln_f", f"blocks.{L - 1}.resid_post"))
    modules = dict(model.named_modules())
    for name, inp in layers:
        out = trace.get(f"{name}.out")
        if out is None:
            continue
        rms_out = out[batch].pow(2).mean(-1).sqrt()  # (T,)
        row = {
            "norm": name,
            "out_rms_mean": float(rms_out.mean()),
            "out_rms_max": float(rms_out.max()),
        }
        # in a pre-norm model each norm reads the residual stream directly
        if pre and inp in trace:
            rms_in = trace[inp][batch].pow(2).mean(-1).sqrt()
            row |= {"in_rms_mean": float(rms_in.mean()), "in_rms_max": float(rms_in.max())}
        w = getattr(modules.get(name), "weight", None)
        if w is not None:
            w = w.detach().float()
            row |= {
                "gain_mean": float(w.mean()),
                "gain_min": float(w.min()),
                "gain_max": float(w.max()),
            }
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- MLP neurons


@dataclass
class NeuronReport:
    layer: int
    acts: np.ndarray  # (T, F) float32: mlp.post, the activation after the nonlinearity
    hist_edges: np.ndarray  # (bins + 1,)
    hist_counts: np.ndarray  # (bins,)
    top: list[dict] = field(default_factory=list)  # most active neurons, see mlp_neurons
    fraction_active: float = 0.0  # share of (position, neuron) entries > 0


def mlp_neurons(trace: dict, layer: int, k: int = 10, bins: int = 60, batch: int = 0):
    """Activation distribution of layer `layer`'s MLP and its k most active neurons.

    Each top record: neuron, max (its largest activation on this text), mean, position of the
    max, and the 3 positions that fire it most (`top_positions`) — the page maps them to tokens.
    """
    acts = trace[f"blocks.{layer}.mlp.post"][batch].numpy().astype(np.float32)  # (T, F)
    counts, edges = np.histogram(acts.reshape(-1), bins=bins)
    peak = acts.max(axis=0)  # (F,)
    k = min(k, acts.shape[1])
    order = np.argsort(-peak, kind="stable")[:k]
    top = []
    for n in order:
        col = acts[:, n]
        pos = np.argsort(-col, kind="stable")[: min(3, len(col))]
        top.append(
            {
                "neuron": int(n),
                "max": float(col.max()),
                "mean": float(col.mean()),
                "argmax": int(col.argmax()),
                "top_positions": [int(p) for p in pos],
                "top_values": [float(col[p]) for p in pos],
            }
        )
    return NeuronReport(
        layer, acts, edges.astype(np.float32), counts, top, float((acts > 0).mean())
    )


# --------------------------------------------------------------------------- one head, step by step


@dataclass
class AttentionSteps:
    """Head `head` of layer `layer` at query position `query`, with the actual numbers.

    Keys run over every position 0..T-1; positions after `query` are masked (causal).
    """

    layer: int
    head: int
    query: int
    head_dim: int  # D
    q: np.ndarray  # (D,)
    k: np.ndarray  # (T, D)
    v: np.ndarray  # (T, D)
    dots: np.ndarray  # (T,) q . k_j
    scaled: np.ndarray  # (T,) dots / sqrt(D)
    masked: np.ndarray  # (T,) scaled with -inf after the query
    weights: np.ndarray  # (T,) softmax(masked)
    z: np.ndarray  # (D,) sum_j weights_j v_j
    captured_weights: np.ndarray  # (T,) the model's own pattern row (a check: equals weights)
    captured_z: np.ndarray  # (D,)
    out: np.ndarray | None  # (C,) this head's share of attn.out: z @ W_O[:, head slice]^T
    shapes: dict[str, str]  # tensor name -> shape, in the B, H, T, D vocabulary
    steps: list[dict] = field(default_factory=list)  # ordered records for the page
    check_error: float = 0.0  # max |weights - captured_weights|: the recomputation is exact


def attention_steps(trace: dict, layer: int, head: int, query: int, model=None, batch: int = 0):
    """Recompute one row of attention from the traced q, k, v — and compare with the trace."""
    pre = f"blocks.{layer}.attn"
    qt, kt, vt = trace[f"{pre}.q"], trace[f"{pre}.k"], trace[f"{pre}.v"]  # (B, H, T, D)
    B, H, T, D = qt.shape
    if not 0 <= query < T:
        raise IndexError(f"query position {query} outside 0..{T - 1}")
    q = qt[batch, head, query].double()  # (D,)
    k = kt[batch, head].double()  # (T, D)
    v = vt[batch, head].double()  # (T, D)
    dots = k @ q  # (T,)
    scaled = dots / math.sqrt(D)
    masked = scaled.clone()
    masked[query + 1 :] = float("-inf")
    weights = torch.softmax(masked, dim=0)  # (T,)
    z = weights @ v  # (D,)
    out = None
    C = H * D
    if model is not None:
        w_o = dict(model.named_modules())[f"{pre}.proj"].weight.detach().cpu().double()  # (C, C)
        out = (w_o[:, head * D : (head + 1) * D] @ z).float().numpy()  # (C,)
    shapes = {
        "q": f"(B, H, T, D) = ({B}, {H}, {T}, {D})",
        "k": f"(B, H, T, D) = ({B}, {H}, {T}, {D})",
        "v": f"(B, H, T, D) = ({B}, {H}, {T}, {D})",
        "scores": f"(B, H, T, T) = ({B}, {H}, {T}, {T})",
        "pattern": f"(B, H, T, T) = ({B}, {H}, {T}, {T})",
        "z": f"(B, H, T, D) = ({B}, {H}, {T}, {D})",
        "out": f"(B, T, C) = ({B}, {T}, {C})",
    }
    f32 = lambda t: t.float().numpy()  # noqa: E731
    steps = [
        {"step": "query vector q", "formula": "q = x W_Q (this head's slice)", "shape": f"(D,) = ({D},)", "values": f32(q)},
        {"step": "key vectors k", "formula": "k_j = x_j W_K, one per position", "shape": f"(T, D) = ({T}, {D})", "values": f32(k)},
        {"step": "dot products", "formula": "q · k_j", "shape": f"(T,) = ({T},)", "values": f32(dots)},
        {"step": "scale", "formula": f"÷ √D = ÷ {math.sqrt(D):.3g}", "shape": f"(T,) = ({T},)", "values": f32(scaled)},
        {"step": "causal mask", "formula": "positions after the query → −∞", "shape": f"(T,) = ({T},)", "values": f32(masked)},
        {"step": "softmax", "formula": "w_j = exp(s_j) / Σ exp(s_i)", "shape": f"(T,) = ({T},)", "values": f32(weights)},
        {"step": "value vectors v", "formula": "v_j = x_j W_V", "shape": f"(T, D) = ({T}, {D})", "values": f32(v)},
        {"step": "weighted sum", "formula": "z = Σ_j w_j v_j", "shape": f"(D,) = ({D},)", "values": f32(z)},
    ]  # fmt: skip
    if out is not None:
        steps.append({"step": "output", "formula": "z W_O (this head's share of attn.out)", "shape": f"(C,) = ({C},)", "values": out})  # fmt: skip
    return AttentionSteps(
        layer, head, query, D, f32(q), f32(k), f32(v), f32(dots), f32(scaled), f32(masked),
        f32(weights), f32(z),
        trace[f"{pre}.pattern"][batch, head, query].numpy(),
        trace[f"{pre}.z"][batch, head, query].numpy(),
        out, shapes, steps,
        float(np.abs(f32(weights) - trace[f"{pre}.pattern"][batch, head, query].numpy()).max()),
    )  # fmt: skip
