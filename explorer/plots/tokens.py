"""Figures for the Tokenize page: tokenizers compared, BPE merges replayed.

Pure functions: records in, `go.Figure` out (no streamlit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from explorer.plots.common import CHIP_PALETTE, base_layout


def tokenizer_comparison(rows: Sequence[Mapping], *, height: int = 300) -> go.Figure:
    """Token count per tokenizer (bars) with characters per token written on each bar.

    rows: mappings with keys name, n_tokens, chars_per_token (fewer tokens = more compression).
    """
    names = [r["name"] for r in rows]
    fig = go.Figure(
        go.Bar(
            x=[r["n_tokens"] for r in rows],
            y=names,
            orientation="h",
            marker_color=[CHIP_PALETTE[i % len(CHIP_PALETTE)] for i in range(len(rows))],
            marker_line=dict(color="#555", width=1),
            text=[f"{r['n_tokens']} tokens · {r['chars_per_token']:.2f} chars/token" for r in rows],
            textposition="auto",
            hovertemplate="%{y}: %{x} tokens<extra></extra>",
        )
    )
    fig.update_xaxes(title="tokens for this text", rangemode="tozero", gridcolor="#eee")
    fig.update_yaxes(autorange="reversed")
    return base_layout(fig, height=max(height, 60 + 40 * len(rows)))


def merge_curve(
    counts: Sequence[int], current: int, steps: Sequence[int] | None = None, *, height: int = 260
) -> go.Figure:
    """Tokens in the text after each merge step: x = merge number (steps[i], default i),
    y = counts[i]. `current` is the slider's index i, marked with a dot."""
    ks = list(steps) if steps is not None else list(range(len(counts)))
    fig = go.Figure(
        go.Scatter(
            x=ks,
            y=list(counts),
            mode="lines",
            line=dict(color="#2563eb", shape="hv"),
            hovertemplate="after merge %{x}: %{y} tokens<extra></extra>",
            name="tokens",
        )
    )
    if counts:
        k = min(max(current, 0), len(counts) - 1)
        fig.add_trace(
            go.Scatter(
                x=[ks[k]],
                y=[counts[k]],
                mode="markers",
                marker=dict(size=12, color="#dc2626"),
                name="slider",
                hovertemplate="merge %{x}: %{y} tokens<extra></extra>",
            )
        )
    fig.update_xaxes(title="merges applied (in training order)", gridcolor="#eee")
    fig.update_yaxes(title="tokens", rangemode="tozero", gridcolor="#eee")
    fig.update_layout(showlegend=False)
    return base_layout(fig, height=height)
