"""Figures for the Sample page: the sampling pipeline on one token axis, and diversity.

Pure functions: numpy arrays / records in, `go.Figure` out (no streamlit). The stage arrays are
the ones `core.sampling.sampling_stages` returns, every one a (V,) probability vector.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.plots.common import STAGE_COLOURS, STAGE_LABELS, STAGES, base_layout, token_label


def axis_tokens(stages: Mapping[str, np.ndarray], top_n: int = 20) -> np.ndarray:
    """The token ids on the shared x axis: the top_n by raw probability, plus any token the
    temperature stage lifts into its own top_n, ordered by raw probability (descending)."""
    raw = np.asarray(stages["raw"], dtype=np.float64)
    ids = set(np.argsort(-raw, kind="stable")[:top_n].tolist())
    if "temperature" in stages:
        temp = np.asarray(stages["temperature"], dtype=np.float64)
        ids |= set(np.argsort(-temp, kind="stable")[:top_n].tolist())
    return np.array(sorted(ids, key=lambda i: (-raw[i], i)), dtype=np.int64)


def stage_bars(
    stages: Mapping[str, np.ndarray],
    labels: Sequence[str],
    top_n: int = 20,
    *,
    log: bool = False,
    height: int = 380,
) -> go.Figure:
    """Grouped bars: for each token on the axis, one bar per pipeline stage.

    A token that top-k or top-p removes drops to zero in that stage's bar, so the eye sees what
    each slider cut. `labels[i]` is the display text of token id i. `log` puts probability on
    a log axis (small raw probabilities become visible; removed tokens vanish).
    """
    ids = axis_tokens(stages, top_n)
    x = np.arange(len(ids))
    # plotly reads <br>, <b>, <a> in text: a token must show as itself, never as markup
    ticks = [html.escape(token_label(labels[i], 14), quote=False) for i in ids]
    fig = go.Figure()
    for stage in STAGES:
        if stage not in stages:
            continue
        probs = np.asarray(stages[stage], dtype=np.float64)[ids]
        fig.add_trace(
            go.Bar(
                x=x,
                y=probs,
                name=STAGE_LABELS[stage],
                marker_color=STAGE_COLOURS[stage],
                customdata=np.stack([ids, probs], axis=1),
                hovertext=[html.escape(token_label(labels[i], 40), quote=False) for i in ids],
                hovertemplate=(
                    f"<b>{STAGE_LABELS[stage]}</b><br>%{{hovertext}}"
                    "<br>id %{customdata[0]:.0f}<br>p = %{customdata[1]:.4f}<extra></extra>"
                ),
            )
        )
    fig.update_layout(barmode="group", bargap=0.2, bargroupgap=0.05)
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=ticks, tickangle=-45, title=None)
    if log:
        fig.update_yaxes(type="log", title="probability (log)", gridcolor="#eee")
    else:
        fig.update_yaxes(title="probability", rangemode="tozero", gridcolor="#eee")
    return base_layout(fig, height=height)


def diversity_figure(records: Sequence[Mapping[str, float]], *, height: int = 320) -> go.Figure:
    """distinct-1 / distinct-2 (left axis) and mean log-probability (right axis) vs temperature.

    records: one mapping per temperature with keys temperature, distinct_1, distinct_2,
    mean_logprob.
    """
    rows = sorted(records, key=lambda r: r["temperature"])
    temps = [r["temperature"] for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, name, colour in (
        ("distinct_1", "distinct-1", "#2563eb"),
        ("distinct_2", "distinct-2", "#7c3aed"),
    ):
        fig.add_trace(
            go.Scatter(
                x=temps,
                y=[r[key] for r in rows],
                name=name,
                mode="lines+markers",
                line=dict(color=colour),
            ),
            secondary_y=False,
        )
    fig.add_trace(
        go.Scatter(
            x=temps,
            y=[r["mean_logprob"] for r in rows],
            name="mean log-prob (T=1 model)",
            mode="lines+markers",
            line=dict(color="#dc2626", dash="dot"),
        ),
        secondary_y=True,
    )
    fig.update_xaxes(title="temperature", gridcolor="#eee")
    fig.update_yaxes(title="distinct n-grams / all n-grams", range=[0, 1.05], secondary_y=False)
    fig.update_yaxes(
        title="mean log-prob per token", secondary_y=True, showgrid=False, tickformat=".1f"
    )
    return base_layout(fig, height=height)
