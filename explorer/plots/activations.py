"""Figures for the Activations page: residual-stream norms, MLP neurons, norm statistics, the
logit lens grid and per-token loss as heat-text.

Pure functions. Every token put into HTML or hover text goes through html.escape first (in
plotly text without quote escaping: plotly decodes &lt; &gt; &amp; but shows &quot; literally,
and quotes cannot open a tag without a '<').
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from explorer.plots.common import PROB_SCALE, base_layout

LENS_TEXT_MAX_T = 24  # beyond this many positions the grid's cell text would be unreadable


def _ticks(labels: list[str]) -> list[str]:
    return [f"{html.escape(s, quote=False)} ·{i}" for i, s in enumerate(labels)]


def residual_norms(stages: list[str], norms: np.ndarray, labels: list[str], height=None):
    """Heatmap: residual-stream L2 norm, stage (rows, embed first) x position (columns)."""
    norms = np.asarray(norms, dtype=np.float32)
    fig = go.Figure(
        go.Heatmap(
            z=norms,
            x=_ticks(labels),
            y=stages,
            colorscale="Magma",
            reversescale=True,
            colorbar=dict(title=dict(text="‖x‖"), thickness=12),
            hovertemplate="%{y}, %{x}<br>norm %{z:.2f}<extra></extra>",
        )
    )
    base_layout(fig, height=height or int(120 + 26 * len(stages)), title="Residual-stream norm")
    fig.update_layout(yaxis=dict(autorange="reversed"), xaxis=dict(tickangle=-60))
    return fig


def neuron_histogram(edges: np.ndarray, counts: np.ndarray, layer: int, height: int = 300):
    """Distribution of every MLP activation (positions x neurons) of one layer, log-count axis."""
    edges = np.asarray(edges, dtype=np.float32)
    centres = ((edges[:-1] + edges[1:]) / 2).astype(np.float32)
    fig = go.Figure(
        go.Bar(
            x=centres,
            y=np.asarray(counts, dtype=np.float32),
            width=float(edges[1] - edges[0]) if len(edges) > 1 else None,
            marker_color="#0891b2",
            hovertemplate="activation ≈ %{x:.2f}: %{y} values<extra></extra>",
        )
    )
    base_layout(
        fig, height=height, title=f"Layer {layer}: MLP activations (after the nonlinearity)"
    )
    fig.update_layout(xaxis=dict(title="activation"), yaxis=dict(title="count", type="log"))
    return fig


def neuron_heatmap(acts: np.ndarray, neurons: list[int], labels: list[str], height=None):
    """(T, k) activations of the chosen neurons at every position: neurons as rows."""
    z = np.asarray(acts, dtype=np.float32).T  # (k, T)
    lim = float(np.abs(z).max(initial=1e-6))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=_ticks(labels),
            y=[f"n{n}" for n in neurons],
            zmin=-lim,
            zmax=lim,
            colorscale="RdBu",
            reversescale=True,
            colorbar=dict(thickness=12),
            hovertemplate="neuron %{y} at %{x}: %{z:.2f}<extra></extra>",
        )
    )
    base_layout(
        fig, height=height or int(120 + 24 * len(neurons)), title="Most active neurons on this text"
    )
    fig.update_layout(yaxis=dict(autorange="reversed"), xaxis=dict(tickangle=-60))
    return fig


def norm_stats_figure(rows: list[dict], height: int = 320) -> go.Figure:
    """Grouped bars per norm layer: RMS of its input (if known) and output, mean over positions."""
    names = [r["norm"] for r in rows]
    fig = go.Figure()
    if any("in_rms_mean" in r for r in rows):
        fig.add_trace(
            go.Bar(
                x=names,
                y=[r.get("in_rms_mean", np.nan) for r in rows],
                name="input RMS",
                marker_color="#f59e0b",
            )
        )
    fig.add_trace(
        go.Bar(
            x=names, y=[r["out_rms_mean"] for r in rows], name="output RMS", marker_color="#2563eb"
        )
    )
    base_layout(fig, height=height, title="Norm layers: what goes in, what comes out")
    fig.update_layout(
        barmode="group",
        yaxis=dict(title="RMS over C, mean over positions"),
        legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom"),
    )
    return fig


def logit_lens_figure(
    stages: list[str],
    top_probs: np.ndarray,
    top_labels: list[list[str]],
    labels: list[str],
    height=None,
    colour_label: str = "p(top)",
):
    """Grid stage x position: colour = a probability (by default the top token's), text = the
    top token. Cells without a value (the last position has no next token) stay blank."""
    p = np.asarray(top_probs, dtype=np.float32)
    S, T = p.shape
    text = [[html.escape(s, quote=False) for s in row] for row in top_labels]
    fig = go.Figure(
        go.Heatmap(
            z=p,
            x=_ticks(labels),
            y=stages,
            zmin=0,
            zmax=1,
            colorscale=PROB_SCALE,
            reversescale=True,
            text=text,
            texttemplate="%{text}" if T <= LENS_TEXT_MAX_T else None,  # else hover only
            textfont=dict(size=11),
            colorbar=dict(title=dict(text=colour_label), thickness=12),
            hovertemplate=f"after %{{y}}, reading %{{x}}<br>top: %{{text}}<br>{colour_label} = %{{z:.2f}}<extra></extra>",
        )
    )
    base_layout(
        fig,
        height=height or int(140 + 30 * S),
        title="Logit lens: the top next-token guess after each sub-layer",
    )
    fig.update_layout(yaxis=dict(autorange="reversed"), xaxis=dict(tickangle=-60))
    return fig


def loss_colour(loss: float, vmax: float) -> str:
    """White (0) to red (>= vmax) for a per-token loss; grey for none."""
    if loss is None or not np.isfinite(loss):
        return "rgb(241,245,249)"
    t = min(1.0, max(0.0, float(loss) / vmax)) if vmax > 0 else 0.0
    return f"rgb(255,{round(255 - 180 * t)},{round(255 - 200 * t)})"


def loss_heat_html(labels: list[str], losses: np.ndarray, vmax: float | None = None) -> str:
    """Each token as a span tinted by its loss (nats), hover title with the number. Escaped."""
    losses = np.asarray(losses, dtype=np.float32)
    finite = losses[np.isfinite(losses)]
    vmax = float(vmax if vmax is not None else (np.percentile(finite, 95) if len(finite) else 1.0))
    parts = []
    for lab, loss in zip(labels, losses):
        tip = (
            "first token: nothing to predict it from"
            if not np.isfinite(loss)
            else f"loss {loss:.2f} nats (p={np.exp(-loss):.3f})"
        )
        parts.append(
            f'<span title="{html.escape(tip)}" style="background:{loss_colour(loss, vmax)};'
            f"padding:2px 1px;margin:0 1px;border-radius:3px;font-family:monospace;"
            f'white-space:pre;unicode-bidi:isolate">{html.escape(lab)}</span>'
        )
    return '<div style="line-height:2.1;font-size:15px">' + "".join(parts) + "</div>"
