"""Figures for the Architecture page: the model drawn from its config, and its costs.

Pure functions of a `ModelConfig`-like object and the count dictionaries from `core.stats`
(no streamlit, no model build), so they redraw on every slider move.
Reference: the GPT block diagram of Raschka, "Build a Large Language Model (From Scratch)", ch. 4.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from explorer.plots.common import FONT, base_layout, fmt_bytes, fmt_count

COLOURS = {
    "io": "#e5e7eb",
    "embed": "#fde68a",
    "norm": "#e9d5ff",
    "attn": "#bfdbfe",
    "mlp": "#bbf7d0",
    "add": "#ffffff",
    "head": "#fecaca",
}


def diagram_boxes(cfg) -> list[dict]:
    """The boxes of the diagram, top (input) to bottom (logits), each a dict with
    label, detail, kind, in_block (inside the repeated transformer block)."""
    C, H, D, F, V, T = (
        cfg.d_model,
        cfg.n_heads,
        cfg.head_dim,
        cfg.ff_dim,
        cfg.vocab_size,
        cfg.context_length,
    )
    norm = "LayerNorm" if cfg.norm == "layernorm" else "RMSNorm"
    pos = {
        "learned": f"learned position embedding  T×C = {T}×{C}",
        "sinusoidal": "sinusoidal positions (fixed, no parameters)",
        "rope": "RoPE: positions rotate q and k inside attention",
        "none": "no position information (causal mask only)",
    }[cfg.pos_encoding]
    act = {"gelu": "GELU", "relu": "ReLU", "swiglu": "SwiGLU (3 matrices)"}[cfg.activation]
    attn = dict(
        id="attn",
        label="causal multi-head attention",
        detail=f"H={H} heads × D={D}; qkv C→3C, proj C→C"
        + (" + RoPE" if cfg.pos_encoding == "rope" else ""),
        kind="attn",
        in_block=True,
    )
    mlp = dict(
        id="mlp",
        label="feed-forward (MLP)",
        detail=f"C→F→C = {C}→{F}→{C}, {act}",
        kind="mlp",
        in_block=True,
    )
    n1 = dict(id="norm1", label=f"{norm} 1", detail="", kind="norm", in_block=True)
    n2 = dict(id="norm2", label=f"{norm} 2", detail="", kind="norm", in_block=True)
    add1 = dict(id="add", label="⊕ residual add", detail="", kind="add", in_block=True)
    add2 = dict(id="add", label="⊕ residual add", detail="", kind="add", in_block=True)
    block = (
        [n1, attn, add1, n2, mlp, add2]
        if cfg.norm_position == "pre"
        else [attn, add1, n1, mlp, add2, n2]
    )
    boxes = [
        dict(id="ids", label="token ids", detail="(B, T)", kind="io", in_block=False),
        dict(
            id="tok_emb",
            label="token embedding",
            detail=f"V×C = {V}×{C}",
            kind="embed",
            in_block=False,
        ),
        dict(id="pos", label="positions", detail=pos, kind="embed", in_block=False),
        *block,
        dict(id="ln_f", label=f"final {norm}", detail="", kind="norm", in_block=False),
        dict(
            id="lm_head",
            label="LM head",
            detail=f"C→V = {C}→{V}" + (" (tied to token embedding)" if cfg.tie_embeddings else ""),
            kind="head",
            in_block=False,
        ),
        dict(id="logits", label="logits", detail="(B, T, V)", kind="io", in_block=False),
    ]
    return boxes


def architecture_diagram(
    cfg, counts: Mapping[str, str] | None = None, *, height: int = 620
) -> go.Figure:
    """The model as stacked boxes; the repeated block is framed and labelled ×L.

    counts: optional box id -> text written at the right of the box (see count_labels; ids are
    tok_emb, pos, norm1, attn, norm2, mlp, ln_f, lm_head).
    Shapes and annotations are collected as plain dicts and set once: one add_shape call per
    box costs ~30 ms of plotly validation, which made every slider move take over a second.
    """
    counts = counts or {}
    boxes = diagram_boxes(cfg)
    n = len(boxes)
    shapes: list[dict] = []
    notes: list[dict] = []
    y_of = [n - i for i in range(n)]
    block_ys = [y for y, b in zip(y_of, boxes) if b["in_block"]]
    if block_ys:
        shapes.append(
            dict(
                type="rect", x0=0.4, x1=9.6, y0=min(block_ys) - 0.45, y1=max(block_ys) + 0.45,
                line=dict(color="#64748b", width=2, dash="dash"),
                fillcolor="rgba(241,245,249,0.6)", layer="below",
            )
        )  # fmt: skip
        notes.append(
            dict(
                x=9.5, y=min(block_ys),  # beside the last residual add, which has no count text
                text=f"<b>× L = {cfg.n_layers} blocks</b>", showarrow=False, xanchor="right",
                font=dict(size=13, color="#334155"),
            )
        )  # fmt: skip
    for i, (y, box) in enumerate(zip(y_of, boxes)):
        x0, x1 = (1.0, 6.0) if box["kind"] != "add" else (2.5, 4.5)
        shapes.append(
            dict(
                type="rect", x0=x0, x1=x1, y0=y - 0.32, y1=y + 0.32,
                line=dict(color="#334155", width=1), fillcolor=COLOURS[box["kind"]],
            )
        )  # fmt: skip
        notes.append(
            dict(
                x=(x0 + x1) / 2, y=y + (0.1 if box["detail"] else 0),
                text=f"<b>{box['label']}</b>", showarrow=False, font=dict(size=12),
            )
        )  # fmt: skip
        if box["detail"]:
            notes.append(
                dict(
                    x=(x0 + x1) / 2, y=y - 0.16, text=box["detail"], showarrow=False,
                    font=dict(size=10, color="#334155"),
                )
            )  # fmt: skip
        if box["id"] in counts:
            notes.append(
                dict(
                    x=6.2, y=y, text=counts[box["id"]], showarrow=False, xanchor="left",
                    font=dict(size=11, color="#475569"),
                )
            )  # fmt: skip
        if i + 1 < n:  # arrow to the next box
            notes.append(
                dict(
                    x=3.5, y=y - 1 + 0.33, ax=3.5, ay=y - 0.33, xref="x", yref="y", axref="x",
                    ayref="y", showarrow=True, arrowhead=2, arrowsize=1, arrowwidth=1.2,
                    arrowcolor="#334155", text="",
                )
            )  # fmt: skip
    fig = go.Figure(
        layout=dict(
            shapes=shapes,
            annotations=notes,
            xaxis=dict(visible=False, range=[0, 10], fixedrange=True),
            yaxis=dict(visible=False, range=[0.4, n + 0.6], fixedrange=True),
            showlegend=False,
            font=dict(family=FONT),
            dragmode=False,
        )
    )
    return base_layout(fig, height=max(height, n * 48))


COMPONENTS = ("embeddings", "position", "attention", "mlp", "norms", "lm_head")


def count_labels(counts: Mapping[str, int]) -> dict[str, str]:
    """Diagram box id -> parameter text, from core.stats.param_counts."""
    per_norm = counts.get("norms_per_block", 0) // 2
    n_layers = counts.get("attention", 0) // max(counts.get("attention_per_block", 0), 1)
    ln_f = counts.get("norms", 0) - n_layers * counts.get("norms_per_block", 0)
    out = {
        "tok_emb": f"{fmt_count(counts.get('embeddings', 0))} params",
        "pos": f"{fmt_count(counts.get('position', 0))} params"
        if counts.get("position")
        else "no params",
        "attn": f"{fmt_count(counts.get('attention_per_block', 0))} per block",
        "mlp": f"{fmt_count(counts.get('mlp_per_block', 0))} per block",
        "norm1": f"{fmt_count(per_norm)} per block",
        "norm2": f"{fmt_count(per_norm)} per block",
        "ln_f": f"{fmt_count(ln_f)} params",
        "lm_head": f"{fmt_count(counts['lm_head'])} params"
        if counts.get("lm_head")
        else "0 (shares W_E)",
    }
    return out


def param_breakdown(counts: Mapping[str, int], *, height: int = 300) -> go.Figure:
    """Horizontal bars: parameters per component (core.stats names; per-block subtotals and
    'total' are left out, the total is the title)."""
    keys = [k for k in COMPONENTS if k in counts] or [k for k in counts if k != "total"]
    items = [(k, int(counts[k])) for k in keys if int(counts[k]) > 0]
    total = int(counts.get("total", sum(v for _, v in items)))
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in items],
            y=[k.replace("_", " ") for k, _ in items],
            orientation="h",
            marker_color="#93c5fd",
            text=[f"{fmt_count(v)} ({100 * v / max(total, 1):.0f}%)" for _, v in items],
            textposition="auto",
            hovertemplate="%{y}: %{x:,} parameters<extra></extra>",
        )
    )
    fig.update_xaxes(title="parameters", gridcolor="#eee")
    fig.update_yaxes(autorange="reversed")
    return base_layout(
        fig, height=max(height, 60 + 28 * len(items)), title=f"{fmt_count(total)} parameters"
    )


def memory_breakdown(mem: Mapping[str, int], *, height: int = 260) -> go.Figure:
    """One stacked bar of training memory: weights, gradients, AdamW state, activations."""
    items = [(k, int(v)) for k, v in mem.items() if k != "total" and int(v) > 0]
    total = int(mem.get("total", sum(v for _, v in items)))
    colours = ["#93c5fd", "#fcd34d", "#fca5a5", "#86efac", "#c4b5fd", "#fdba74"]
    fig = go.Figure()
    for i, (k, v) in enumerate(items):
        fig.add_trace(
            go.Bar(
                x=[v],
                y=["memory"],
                orientation="h",
                name=f"{k.replace('_', ' ')} {fmt_bytes(v)}",
                marker_color=colours[i % len(colours)],
                hovertemplate=f"{k}: {fmt_bytes(v)}<extra></extra>",
            )
        )
    fig.update_xaxes(gridcolor="#eee")  # tick labels read as bytes (k, M, G)
    fig.update_yaxes(visible=False)
    base_layout(fig, height=height, title=f"training memory ≈ {fmt_bytes(total)}")
    # legend under the bar, so it never covers the title
    fig.update_layout(
        barmode="stack",
        legend=dict(
            orientation="h", yanchor="top", y=-0.25, x=0, entrywidth=0.5, entrywidthmode="fraction"
        ),
        margin=dict(b=10),
    )
    return fig
