"""Figures for the Embeddings page: the token map, position similarity, contextual paths.

Pure functions: numpy in, `go.Figure` out. Large arrays go in as float32 numpy so plotly sends
them as typed arrays; the map is SVG for small vocabularies and Scattergl from GL_FROM tokens on
(a 50k-token GPT-2 vocabulary draws in seconds).
Every point carries its token id in `customdata`, which is what a click returns to the page.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from explorer.plots.common import base_layout

CATEGORY_COLOURS = (
    "#2563eb",
    "#dc2626",
    "#16a34a",
    "#9333ea",
    "#ea580c",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#ca8a04",
    "#4f46e5",
    "#0d9488",
    "#b45309",
    "#7c3aed",
    "#be123c",
)
OTHER_COLOUR = "#cbd5e1"
# SVG up to this many points (draws at once); WebGL above it (scales, but its context costs
# ~1 s to start in a browser without a GPU)
GL_FROM = 5000
COLOUR_BY = ("category", "frequency", "length")


def _hover(labels: list[str]) -> np.ndarray:
    # plotly renders a little HTML in hover text; escape so a token shows literally. An object
    # array, not a list: plotly validates a 50k-string list item by item (0.9 s vs 0.03 s).
    return np.array([html.escape(s, quote=False) for s in labels], dtype=object)


def embedding_map(
    xy: np.ndarray,
    labels: list[str],
    colour_by: str = "category",
    categories: list[str] | None = None,
    values: np.ndarray | None = None,
    selected: int | None = None,
    neighbours: list[int] | None = None,
    title: str | None = None,
    height: int = 560,
) -> go.Figure:
    """Every token as a point at xy (V, 2).

    colour_by "category": one trace per category (legend toggles them; "other" is grey);
    "frequency" / "length": one trace coloured by `values` (V,). A selected token gets a star and
    its neighbours a ring, each labelled with its text.
    """
    xy = np.asarray(xy, dtype=np.float32)
    V = len(xy)
    ids = np.arange(V, dtype=np.int32)
    hover = _hover(labels)
    tmpl = "%{text}<br>id %{customdata}<extra></extra>"
    fig = go.Figure()
    Scatter = go.Scattergl if V >= GL_FROM else go.Scatter
    if colour_by == "category" and categories is not None:
        cats = np.asarray(categories, dtype=object)
        names = sorted(set(categories) - {"other"})
        order = (["other"] if "other" in set(categories) else []) + names
        for j, cat in enumerate(order):
            m = np.flatnonzero(cats == cat)
            colour = OTHER_COLOUR if cat == "other" else CATEGORY_COLOURS[j % len(CATEGORY_COLOURS)]
            fig.add_trace(
                Scatter(
                    x=xy[m, 0],
                    y=xy[m, 1],
                    mode="markers",
                    name=f"{cat} ({len(m)})",
                    marker=dict(size=4 if cat == "other" else 7, color=colour, opacity=0.75),
                    text=hover[m],
                    customdata=ids[m],
                    hovertemplate=tmpl,
                    unselected=dict(marker=dict(opacity=0.75)),  # a click must not grey the map
                )
            )
    else:
        vals = np.zeros(V, np.float32) if values is None else np.asarray(values, np.float32)
        cbar = "log10(count + 1)" if colour_by == "frequency" else "characters"
        if colour_by == "frequency":
            vals = np.log10(vals + 1.0).astype(np.float32)
        fig.add_trace(
            Scatter(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                name="tokens",
                marker=dict(
                    size=5,
                    color=vals,
                    colorscale="Viridis",
                    opacity=0.8,
                    colorbar=dict(title=dict(text=cbar), thickness=12),
                ),
                text=hover,
                customdata=ids,
                hovertemplate=tmpl,
                unselected=dict(marker=dict(opacity=0.8)),
            )
        )
    if neighbours:
        nb = np.asarray(neighbours, dtype=np.int64)
        fig.add_trace(
            go.Scatter(
                x=xy[nb, 0],
                y=xy[nb, 1],
                mode="markers+text",
                name="nearest neighbours",
                marker=dict(size=13, color="rgba(0,0,0,0)", line=dict(color="#f59e0b", width=2.5)),
                text=hover[nb],
                textposition="top center",
                customdata=nb.astype(np.int32),
                hovertemplate=tmpl,
            )
        )
    if selected is not None and 0 <= selected < V:
        fig.add_trace(
            go.Scatter(
                x=xy[[selected], 0],
                y=xy[[selected], 1],
                mode="markers+text",
                name="selected",
                marker=dict(
                    size=18, symbol="star", color="#f43f5e", line=dict(color="#111", width=1)
                ),
                text=hover[[selected]],
                textposition="bottom center",
                textfont=dict(size=15),
                customdata=np.array([selected], dtype=np.int32),
                hovertemplate=tmpl,
            )
        )
    base_layout(fig, height=height, title=title)
    fig.update_layout(
        xaxis=dict(showticklabels=False, zeroline=False, showgrid=False, title=None),
        yaxis=dict(showticklabels=False, zeroline=False, showgrid=False, title=None),
        dragmode="pan",
        legend=dict(orientation="v", x=1.01, y=1, yanchor="top", itemsizing="constant"),
        clickmode="event+select",
        hovermode="closest",
    )
    return fig


def position_similarity(sim: np.ndarray, kind: str, height: int = 380) -> go.Figure:
    """(P, P) cosine similarity between positions; diagonal = 1."""
    sim = np.asarray(sim, dtype=np.float32)
    fig = go.Figure(
        go.Heatmap(
            z=sim,
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            reversescale=True,
            colorbar=dict(title=dict(text="cosine"), thickness=12),
            hovertemplate="position %{y} vs %{x}: %{z:.2f}<extra></extra>",
        )
    )
    base_layout(fig, height=height, title=f"Position similarity ({kind})")
    fig.update_layout(
        xaxis=dict(title="position", constrain="domain"),
        yaxis=dict(title="position", autorange="reversed", scaleanchor="x"),
    )
    return fig


def contextual_path(
    xy: np.ndarray, labels: list[str], layer_name: str, height: int = 460
) -> go.Figure:
    """Each token of a text as a point (PCA of its residual vector), joined in sequence order."""
    xy = np.asarray(xy, dtype=np.float32)
    T = len(xy)
    hover = _hover(labels)
    fig = go.Figure(
        go.Scatter(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="lines+markers+text",
            line=dict(color="#cbd5e1", width=1.5),
            marker=dict(
                size=11,
                color=np.arange(T, dtype=np.float32),
                colorscale="Viridis",
                colorbar=dict(title=dict(text="position"), thickness=12),
            ),
            text=hover,
            textposition="top center",
            customdata=np.arange(T, dtype=np.int32),
            hovertemplate="%{text}<br>position %{customdata}<extra></extra>",
        )
    )
    base_layout(fig, height=height, title=f"Your text at {layer_name} (PCA of the residual stream)")
    fig.update_layout(
        xaxis=dict(title="PC 1", zeroline=False), yaxis=dict(title="PC 2", zeroline=False)
    )
    return fig


def neighbour_bars(labels: list[str], sims: np.ndarray, title: str, height: int = 320):
    """Horizontal bars: cosine similarity of each nearest neighbour, best on top."""
    sims = np.asarray(sims, dtype=np.float32)
    fig = go.Figure(
        go.Bar(
            x=sims[::-1],
            y=[f"{html.escape(s, quote=False)} " for s in labels[::-1]],
            orientation="h",
            marker_color="#f59e0b",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    base_layout(fig, height=height, title=title)
    fig.update_layout(
        xaxis=dict(title="cosine similarity", range=[min(0.0, float(sims.min(initial=0))), 1])
    )
    return fig
