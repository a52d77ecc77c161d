"""Figures for the Attention page: the layer x head grid, one head enlarged, head-role scores,
and one query position worked through step by step.

The grid is one mosaic heatmap (every head's T x T pattern tiled with gaps) rather than L x H
subplots: one trace draws fast even for GPT-2's 144 heads. A transparent square marker sits on
each tile, carrying (layer, head) as customdata, so a click on a thumbnail selects that head
(plotly selects scatter points, not heatmap cells).
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.plots.common import PROB_SCALE, base_layout

ROLE_TEXT = {
    "previous_token": "Previous-token: how much each position attends to the token just before "
    "it — the building block of bigrams and of induction.",
    "first_token": "First-token sink: attention parked on position 0 when a head has nothing "
    "useful to look at (softmax must put its weight somewhere).",
    "induction": "Induction: on a repeated sequence, attention to the token after the earlier "
    "copy of the current token — how a model continues a pattern it has seen.",
}
ROLE_TITLES = {
    "previous_token": "previous token",
    "first_token": "first-token sink",
    "induction": "induction",
}


def grid_geometry(T: int, gap: int | None = None) -> tuple[int, int]:
    """(gap, step) of the mosaic: a tile of T cells then `gap` empty cells."""
    gap = max(1, T // 8) if gap is None else gap
    return gap, T + gap


def head_grid(patterns: np.ndarray, selected: tuple[int, int] | None = None, width: int = 460):
    """patterns (L, H, T, T) float in [0, 1] -> a mosaic of L rows x H columns of thumbnails.

    The figure has a fixed pixel size (`width`, height to match) so each click target can be
    sized to cover its tile exactly.
    """
    pats = np.asarray(patterns, dtype=np.float32)
    L, H, T, _ = pats.shape
    gap, step = grid_geometry(T)
    mosaic = np.full((L * step - gap, H * step - gap), np.nan, dtype=np.float32)
    lower = np.tril(np.ones((T, T), bool))
    for i in range(L):
        for h in range(H):
            mosaic[i * step : i * step + T, h * step : h * step + T] = np.where(
                lower, pats[i, h], np.nan
            )
    left, top = 64, 28
    cell = (width - left - 8) / (mosaic.shape[1] + gap)  # pixels per attention cell
    height = int(cell * (mosaic.shape[0] + gap) + top + 8)
    centres = (np.arange(max(L, H)) * step + (T - 1) / 2).astype(np.float32)
    fig = go.Figure(
        go.Heatmap(z=mosaic, zmin=0, zmax=1, colorscale="Blues", showscale=False, hoverinfo="skip")
    )
    cx, cy = np.meshgrid(centres[:H], centres[:L])  # (L, H)
    fig.add_trace(
        go.Scatter(
            x=cx.reshape(-1).astype(np.float32),
            y=cy.reshape(-1).astype(np.float32),
            mode="markers",
            # invisible but hit-testable: a click anywhere on a tile selects that head
            marker=dict(symbol="square", size=max(6.0, cell * T), color="rgba(0,0,0,0)"),
            # one int per tile, layer * H + head: a scalar survives the selection event intact
            customdata=np.arange(L * H, dtype=np.int32),
            text=[f"layer {i}, head {h}" for i in range(L) for h in range(H)],
            hovertemplate="%{text}<br>click to enlarge<extra></extra>",
            name="heads",
            showlegend=False,
            selected=dict(marker=dict(opacity=1)),
            unselected=dict(marker=dict(opacity=1)),
        )
    )
    if selected is not None:
        li, hi = selected
        x0, y0 = hi * step - gap / 2 - 0.5, li * step - gap / 2 - 0.5
        fig.add_shape(
            type="rect", x0=x0, y0=y0, x1=x0 + step, y1=y0 + step,
            line=dict(color="#f43f5e", width=3),
        )  # fmt: skip
    base_layout(fig, height=height)
    fig.update_layout(
        width=width,
        xaxis=dict(
            tickvals=centres[:H], ticktext=[f"h{h}" for h in range(H)], side="top", tickangle=0,
            showgrid=False, zeroline=False, fixedrange=True,
            range=[-0.5 - gap / 2, mosaic.shape[1] - 0.5 + gap / 2],
        ),
        yaxis=dict(
            tickvals=centres[:L], ticktext=[f"layer {i}" for i in range(L)],
            range=[mosaic.shape[0] - 0.5 + gap / 2, -0.5 - gap / 2],
            showgrid=False, zeroline=False, fixedrange=True,
        ),
        clickmode="event+select",
        dragmode=False,
        hovermode="closest",
        margin=dict(l=left, r=8, t=top, b=8),
    )  # fmt: skip
    return fig


def head_from_click(customdata, n_heads: int) -> tuple[int, int] | None:
    """(layer, head) from a clicked grid tile's customdata (layer * H + head), else None."""
    if isinstance(customdata, dict):  # a typed-array row arrives as {"0": v, ...}
        customdata = [customdata[k] for k in sorted(customdata, key=int)]
    if isinstance(customdata, list | tuple):
        if len(customdata) == 2:
            return int(customdata[0]), int(customdata[1])
        customdata = customdata[0] if customdata else None
    if customdata is None:
        return None
    return divmod(int(customdata), n_heads)


def head_heatmap(pattern: np.ndarray, labels: list[str], layer: int, head: int, height=None):
    """One head's (T, T) pattern with token labels on both axes (query rows, key columns)."""
    pat = np.asarray(pattern, dtype=np.float32)
    T = len(pat)
    pat = np.where(np.tril(np.ones((T, T), bool)), pat, np.nan).astype(np.float32)
    # the position suffix keeps two equal tokens apart on the axis
    ticks = [f"{html.escape(s, quote=False)} ·{i}" for i, s in enumerate(labels)]
    fig = go.Figure(
        go.Heatmap(
            z=pat,
            x=ticks,
            y=ticks,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            colorbar=dict(title=dict(text="weight"), thickness=12),
            hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>",
        )
    )
    size = height or int(min(720, 160 + 18 * T))
    base_layout(fig, height=size, title=f"Layer {layer}, head {head}: who attends to whom")
    fig.update_layout(
        xaxis=dict(title="key (attended to)", tickangle=-60, constrain="domain"),
        yaxis=dict(title="query (attending)", autorange="reversed", scaleanchor="x"),
    )
    return fig


def head_scores_figure(scores: dict[str, np.ndarray], height: int = 320) -> go.Figure:
    """One layer x head heatmap per role, the score written in each cell."""
    roles = [r for r in ROLE_TITLES if r in scores]
    fig = make_subplots(
        rows=1,
        cols=len(roles),
        subplot_titles=[ROLE_TITLES[r] for r in roles],
        horizontal_spacing=0.06,
    )
    for j, role in enumerate(roles, start=1):
        s = np.asarray(scores[role], dtype=np.float32)  # (L, H)
        L, H = s.shape
        fig.add_trace(
            go.Heatmap(
                z=s,
                x=[f"h{h}" for h in range(H)],
                y=[f"L{i}" for i in range(L)],
                zmin=0,
                zmax=1,
                colorscale=PROB_SCALE,
                reversescale=True,
                showscale=j == len(roles),
                text=np.round(s, 2).astype(str) if L * H <= 64 else None,
                texttemplate="%{text}" if L * H <= 64 else None,
                hovertemplate=f"{ROLE_TITLES[role]}<br>layer %{{y}}, head %{{x}}: %{{z:.2f}}<extra></extra>",
            ),
            row=1,
            col=j,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=j)
    base_layout(fig, height=height)
    fig.update_layout(margin=dict(t=40))
    return fig


def step_figure(labels: list[str], dots, scaled, weights, query: int, height: int = 460):
    """Three aligned bar rows over key positions: q·k, ÷√D (masked ones hatched out), softmax."""
    T = len(labels)
    ticks = [f"{html.escape(s, quote=False)} ·{i}" for i, s in enumerate(labels)]
    dots, scaled, weights = (np.asarray(a, dtype=np.float32) for a in (dots, scaled, weights))
    future = np.arange(T) > query
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(
            "q · k_j (dot products)",
            "÷ √D, then the causal mask",
            "softmax → weights",
        ),
    )
    grey, blue = "#cbd5e1", "#2563eb"
    fig.add_trace(go.Bar(x=ticks, y=dots, marker_color=np.where(future, grey, blue).tolist()), 1, 1)
    fig.add_trace(
        go.Bar(
            x=ticks,
            y=np.where(future, 0, scaled).astype(np.float32),
            marker_color=np.where(future, grey, "#7c3aed").tolist(),
            text=np.where(future, "−∞ (masked)", "").tolist(),
        ),
        2,
        1,
    )
    fig.add_trace(
        go.Bar(
            x=ticks,
            y=weights,
            marker_color="#f59e0b",
            text=[f"{w:.2f}" if not f else "" for w, f in zip(weights, future)],
            textposition="outside",
        ),
        3,
        1,
    )
    base_layout(fig, height=height)
    fig.update_layout(showlegend=False, bargap=0.15, margin=dict(t=36))
    fig.update_xaxes(tickangle=-60)
    fig.update_yaxes(range=[0, 1.15], row=3, col=1)
    return fig


def vector_strip(values: np.ndarray, row_labels: list[str], title: str, height=None):
    """A small heatmap of vectors (rows) over their D components: q, k_j, v_j, z."""
    v = np.atleast_2d(np.asarray(values, dtype=np.float32))
    lim = float(np.abs(v).max(initial=1e-6))
    fig = go.Figure(
        go.Heatmap(
            z=v,
            y=[html.escape(s, quote=False) for s in row_labels],
            zmin=-lim,
            zmax=lim,
            colorscale="RdBu",
            reversescale=True,
            colorbar=dict(thickness=10),
            hovertemplate="%{y} [%{x}] = %{z:.3f}<extra></extra>",
        )
    )
    base_layout(fig, height=height or int(max(160, 100 + 20 * len(v))), title=title)
    fig.update_layout(xaxis=dict(title="component (D)"), yaxis=dict(autorange="reversed"))
    return fig
