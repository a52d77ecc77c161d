"""Pure figure builders for the Train page: arrays in, `go.Figure` (or escaped HTML) out.

Live curves (loss, learning rate, gradient norm with clipping events, per-layer gradient norms,
tokens/s), run overlays, and the time-lapse views that one step slider moves together (a cursor on
the loss curve, the attention grid on the probe text, the aligned embedding map, head-role scores
over steps, per-token loss as heat-text). No `st.` calls here; tests build every figure.
Shape letters as everywhere: S time-lapse steps, L layers, H heads, T tokens, V vocabulary.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_POINTS = (
    2000  # a curve is decimated to this many points: the browser draws fast, the JSON is small
)
TRAIN_COLOUR, VAL_COLOUR, CURSOR_COLOUR, CLIP_COLOUR = "#1f77b4", "#ff7f0e", "#d62728", "#d62728"
HEAD_SCORE_NAMES = ("previous_token", "first_token", "induction")
HEAT_SCALE = "Viridis"
LOSS_SCALE = "Reds"
_LAYOUT = dict(
    margin=dict(l=50, r=10, t=40, b=40), height=280, legend=dict(orientation="h", y=-0.25)
)


def _plotly_text(label) -> str:
    """Plotly renders a few HTML tags in hover and tick text: escape <, > and & (not quotes,
    which plotly would show as entities)."""
    return html.escape(str(label), quote=False)


def _arr(x) -> np.ndarray:
    return np.asarray(x if x is not None else [], dtype=np.float64)


def decimate(x, *ys, max_points: int = MAX_POINTS):
    """Every k-th point (always keeping the last) so a long run stays a light figure."""
    x = _arr(x)
    ys = [_arr(y) for y in ys]
    if len(x) <= max_points:
        return (x, *ys)
    idx = np.unique(np.append(np.linspace(0, len(x) - 1, max_points).astype(int), len(x) - 1))
    return (x[idx], *[y[idx] for y in ys])


def ema(values, alpha: float = 0.1) -> np.ndarray:
    """Exponential moving average (alpha in (0, 1]; 1 = no smoothing), NaN-tolerant.
    A Python loop: call it on decimated curves (<= MAX_POINTS), see `smoothed`."""
    v = _arr(values)
    out = np.empty_like(v)
    acc = np.nan
    for i, x in enumerate(v.tolist()):
        if x == x and abs(x) != np.inf:
            acc = x if acc != acc else alpha * x + (1 - alpha) * acc
        out[i] = acc
    return out


def smoothed(x, y, alpha: float, max_points: int = MAX_POINTS):
    """Decimate, then smooth with the per-point alpha adjusted to the stride, so a 100k-step
    curve costs what a 2k-step one does (the live view rebuilds it every few seconds)."""
    dx, dy = decimate(x, y, max_points=max_points)
    n = len(_arr(x))
    stride = max(1.0, n / max(1, len(dx)))
    return dx, ema(dy, 1 - (1 - alpha) ** stride)


def _cursor(fig: go.Figure, step: float | None) -> None:
    """A dotted vertical line at `step` (a plain layout shape: add_vline costs ~20 ms a call,
    and live figures are rebuilt every few seconds for every watcher)."""
    if step is not None:
        line = dict(color=CURSOR_COLOUR, width=2, dash="dot")
        shape = dict(type="line", xref="x", yref="paper", x0=step, x1=step, y0=0, y1=1, line=line)
        fig.layout.shapes = (*fig.layout.shapes, shape)


def _empty(title: str, message: str = "no data yet") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False, **_LAYOUT)
    return fig


def loss_figure(
    steps,
    train_loss,
    eval_steps=None,
    val_loss=None,
    *,
    eval_train_loss=None,
    cursor: float | None = None,
    smooth: float = 1.0,
    title: str = "Loss",
) -> go.Figure:
    """Per-step train loss (optionally smoothed), eval-time train/val loss, and a step cursor."""
    if len(_arr(steps)) == 0 and len(_arr(eval_steps)) == 0:
        return _empty(title)
    x, y = smoothed(steps, train_loss, smooth) if smooth < 1 else decimate(steps, train_loss)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=y, name="train (per step)", line=dict(color=TRAIN_COLOUR)))
    if eval_steps is not None and len(_arr(eval_steps)):
        if eval_train_loss is not None and len(_arr(eval_train_loss)):
            fig.add_trace(
                go.Scatter(
                    x=_arr(eval_steps),
                    y=_arr(eval_train_loss),
                    name="train (eval)",
                    mode="lines+markers",
                    line=dict(color=TRAIN_COLOUR, dash="dash"),
                )
            )
        if val_loss is not None and len(_arr(val_loss)):
            fig.add_trace(
                go.Scatter(
                    x=_arr(eval_steps),
                    y=_arr(val_loss),
                    name="val",
                    mode="lines+markers",
                    line=dict(color=VAL_COLOUR),
                )
            )
    _cursor(fig, cursor)
    fig.update_layout(
        title=title, xaxis_title="step", yaxis_title="cross-entropy (nats)", **_LAYOUT
    )
    return fig


def lr_figure(steps, lr, *, cursor: float | None = None) -> go.Figure:
    """The learning-rate schedule as it was applied (warm-up then cosine decay)."""
    if len(_arr(steps)) == 0:
        return _empty("Learning rate")
    x, y = decimate(steps, lr)
    fig = go.Figure(go.Scatter(x=x, y=y, name="lr", line=dict(color="#2ca02c")))
    _cursor(fig, cursor)
    fig.update_layout(
        title="Learning rate", xaxis_title="step", yaxis_exponentformat="e", **_LAYOUT
    )
    return fig


def grad_norm_figure(
    steps, grad_norm, clipped=None, *, clip: float | None = None, cursor: float | None = None
) -> go.Figure:
    """Pre-clip global gradient norm; steps where clipping fired are marked, the threshold dashed."""
    if len(_arr(steps)) == 0:
        return _empty("Gradient norm")
    s, g = _arr(steps), _arr(grad_norm)
    x, y = decimate(s, g)
    fig = go.Figure(go.Scatter(x=x, y=y, name="grad norm (pre-clip)", line=dict(color="#9467bd")))
    if clipped is not None and len(_arr(clipped)):
        mask = _arr(clipped).astype(bool)
        n = int(mask.sum())
        if n:
            cx, cy = decimate(s[mask], g[mask])
            fig.add_trace(
                go.Scatter(
                    x=cx,
                    y=cy,
                    mode="markers",
                    name=f"clipped ({n} steps)",
                    marker=dict(color=CLIP_COLOUR, size=4, symbol="x", opacity=0.5),
                )
            )
    if clip:
        line = dict(color="grey", dash="dash")
        fig.layout.shapes = (
            dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=clip, y1=clip, line=line),
        )
        fig.layout.annotations = (
            dict(text=f"clip {clip:g}", x=1, xref="paper", y=float(np.log10(clip)), yref="y",
                 xanchor="right", yanchor="bottom", showarrow=False),
        )  # fmt: skip
    _cursor(fig, cursor)
    fig.update_layout(title="Gradient norm", xaxis_title="step", **_LAYOUT)
    fig.update_yaxes(type="log", tickformat=".2~g", dtick="D2")
    return fig


def layer_grad_norms_figure(steps, norms, names: Sequence[str] | None = None) -> go.Figure:
    """Gradient norm of each layer over steps: `norms` is (S, L) or a {name: (S,)} mapping."""
    if isinstance(norms, dict):
        names = list(norms)
        norms = np.stack([_arr(norms[n]) for n in names], axis=1) if names else np.zeros((0, 0))
    norms = np.asarray(norms, dtype=np.float64)
    if norms.size == 0 or len(_arr(steps)) == 0:
        return _empty("Per-layer gradient norm")
    names = list(names) if names is not None else [f"layer {i}" for i in range(norms.shape[1])]
    fig = go.Figure()
    for j, name in enumerate(names):
        x, y = decimate(steps, norms[:, j])
        fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines"))
    fig.update_layout(title="Per-layer gradient norm", xaxis_title="step", **_LAYOUT)
    fig.update_yaxes(type="log", tickformat=".2~g", dtick="D2")
    return fig


def tokens_per_s_figure(steps, tokens_per_s, *, smooth: float = 0.05) -> go.Figure:
    """Throughput per step (faint; steps with an eval or a checkpoint dip) and its moving average."""
    if len(_arr(steps)) == 0:
        return _empty("Throughput")
    x, y = decimate(steps, tokens_per_s)
    _, ys = smoothed(steps, tokens_per_s, smooth)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x, y=y, name="per step", line=dict(color="#8c564b", width=1), opacity=0.35)
    )
    fig.add_trace(go.Scatter(x=x, y=ys, name="average", line=dict(color="#8c564b", width=2)))
    fig.update_layout(title="Throughput", xaxis_title="step", yaxis_title="tokens/s", **_LAYOUT)
    return fig


def overlay_figure(
    curves: Sequence[dict], *, smooth: float = 1.0, metric: str = "loss"
) -> go.Figure:
    """Loss curves of several runs on one axis. Each curve: {"label", "steps", "values"} and an
    optional "dash" (val curves dashed)."""
    curves = [c for c in curves if len(_arr(c.get("steps")))]
    if not curves:
        return _empty("Compare runs", "pick runs with a loss curve")
    fig = go.Figure()
    for c in curves:
        if smooth < 1 and not c.get("dash"):
            x, y = smoothed(c["steps"], c["values"], smooth)
        else:
            x, y = decimate(c["steps"], c["values"])
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                name=_plotly_text(c["label"]),  # a run name is user text
                mode="lines",
                line=dict(dash="dash" if c.get("dash") else "solid", color=c.get("colour")),
            )
        )
    fig.update_layout(
        title="Compare runs", xaxis_title="step", yaxis_title=metric, showlegend=True, **_LAYOUT
    )
    fig.update_layout(height=380)
    return fig


# ---------------------------------------------------------------- time-lapse


def attention_grid_figure(
    attention, token_labels: Sequence[str], *, step: int | None = None
) -> go.Figure:
    """Every head's attention pattern on the probe text at one step: `attention` is (L, H, T, T)."""
    a = np.asarray(attention, dtype=np.float32)
    if a.ndim != 4 or a.size == 0:
        return _empty("Attention on the probe text", "no attention recorded")
    L, H, T, _ = a.shape
    labels = [f"{i}:{_plotly_text(t)}" for i, t in enumerate(token_labels[:T])]
    fig = make_subplots(
        rows=L,
        cols=H,
        subplot_titles=[f"L{l}H{h}" for l in range(L) for h in range(H)],
        horizontal_spacing=0.02,
        vertical_spacing=0.04,
    )
    for l in range(L):
        for h in range(H):
            fig.add_trace(
                go.Heatmap(
                    z=a[l, h],
                    x=labels,
                    y=labels,
                    zmin=0,
                    zmax=1,
                    coloraxis="coloraxis",
                    hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.2f}<extra>"
                    + f"L{l}H{h}</extra>",
                ),
                row=l + 1,
                col=h + 1,
            )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    title = "Attention on the probe text" + (f" at step {step}" if step is not None else "")
    fig.update_layout(
        title=title,
        coloraxis=dict(colorscale=HEAT_SCALE, cmin=0, cmax=1),
        height=max(260, 150 * L + 60),
        margin=dict(l=10, r=10, t=60, b=10),
    )
    fig.update_annotations(font_size=10)
    return fig


def embedding_map_figure(
    xy,
    token_labels: Sequence[str],
    *,
    categories: Sequence[str] | None = None,
    extent: tuple[float, float, float, float] | None = None,
    step: int | None = None,
) -> go.Figure:
    """The aligned 2-D embedding map at one step, (V, 2). `extent` (x0, x1, y0, y1), computed over
    all steps, keeps the axes still while the slider moves so only the points move."""
    p = np.asarray(xy, dtype=np.float32)
    if p.ndim != 2 or p.shape[0] == 0:
        return _empty("Embedding map", "no embedding map recorded")
    labels = [_plotly_text(t) for t in token_labels[: len(p)]]
    labels += [""] * max(0, len(p) - len(labels))
    fig = go.Figure()
    cats = list(categories[: len(p)]) if categories is not None else ["token"] * len(p)
    cats += ["other"] * (len(p) - len(cats))
    for cat in sorted(set(cats), key=lambda c: (c == "other", c)):
        idx = [i for i, c in enumerate(cats) if c == cat]
        fig.add_trace(
            go.Scattergl(
                x=p[idx, 0],
                y=p[idx, 1],
                mode="markers",
                name=cat,
                text=[labels[i] for i in idx],
                hovertemplate="%{text}<extra>" + html.escape(cat) + "</extra>",
                marker=dict(
                    size=5 if cat != "other" else 3, opacity=0.8 if cat != "other" else 0.3
                ),
            )
        )
    if extent is not None:
        fig.update_xaxes(range=[extent[0], extent[1]])
        fig.update_yaxes(range=[extent[2], extent[3]])
    title = "Token embedding map (aligned PCA)" + (f" at step {step}" if step is not None else "")
    fig.update_layout(title=title, **{**_LAYOUT, "height": 420})
    return fig


def map_extent(maps, pad: float = 0.05) -> tuple[float, float, float, float]:
    """Axis ranges covering every step's map, (S, V, 2) -> (x0, x1, y0, y1)."""
    m = np.asarray(maps, dtype=np.float64).reshape(-1, 2)
    m = m[np.isfinite(m).all(axis=1)]
    if len(m) == 0:
        return (-1.0, 1.0, -1.0, 1.0)
    lo, hi = m.min(axis=0), m.max(axis=0)
    span = np.maximum(hi - lo, 1e-6) * pad
    return (lo[0] - span[0], hi[0] + span[0], lo[1] - span[1], hi[1] + span[1])


def head_scores_figure(
    steps, scores, *, kind: int = 0, cursor: float | None = None, names=HEAD_SCORE_NAMES
) -> go.Figure:
    """Head-role scores over training: x = step, y = every head (L{l}H{h}), colour = score.
    `scores` is (S, L, H, K); `kind` picks which of the K scores."""
    sc = np.asarray(scores, dtype=np.float32)
    if sc.ndim != 4 or sc.shape[0] == 0:
        return _empty("Head roles over training", "no head scores recorded")
    S, L, H, _ = sc.shape
    z = sc[:, :, :, kind].reshape(S, L * H).T  # (L*H, S)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=_arr(steps),
            y=[f"L{l}H{h}" for l in range(L) for h in range(H)],
            zmin=0,
            zmax=1,
            colorscale=HEAT_SCALE,
            hovertemplate="step %{x}<br>%{y}<br>score %{z:.2f}<extra></extra>",
        )
    )
    _cursor(fig, cursor)
    name = names[kind] if kind < len(names) else f"score {kind}"
    fig.update_layout(
        title=f"Head roles over training: {name.replace('_', '-')} score",
        xaxis_title="step",
        yaxis_autorange="reversed",
        **{**_LAYOUT, "height": max(260, 18 * L * H + 100)},
    )
    return fig


def head_scores_at_step_figure(
    scores_step, *, names=HEAD_SCORE_NAMES, step: int | None = None
) -> go.Figure:
    """Layer x head heatmaps of every score at one step: `scores_step` is (L, H, K)."""
    sc = np.asarray(scores_step, dtype=np.float32)
    if sc.ndim != 3 or sc.size == 0:
        return _empty("Head roles", "no head scores recorded")
    L, H, K = sc.shape
    titles = [(names[k] if k < len(names) else f"score {k}").replace("_", "-") for k in range(K)]
    fig = make_subplots(rows=1, cols=K, subplot_titles=titles, horizontal_spacing=0.08)
    for k in range(K):
        fig.add_trace(
            go.Heatmap(
                z=sc[:, :, k],
                x=[f"H{h}" for h in range(H)],
                y=[f"L{l}" for l in range(L)],
                coloraxis="coloraxis",
                text=np.round(sc[:, :, k], 2),
                texttemplate="%{text}",
                hovertemplate="%{y} %{x}<br>%{z:.2f}<extra>" + titles[k] + "</extra>",
            ),
            row=1,
            col=k + 1,
        )
    fig.update_yaxes(autorange="reversed")
    title = "Head roles (layer × head)" + (f" at step {step}" if step is not None else "")
    fig.update_layout(
        title=title,
        coloraxis=dict(colorscale=HEAT_SCALE, cmin=0, cmax=1),
        **{**_LAYOUT, "height": max(260, 45 * L + 140), "margin": dict(l=50, r=10, t=80, b=40)},
    )
    return fig


def token_loss_html(token_labels: Sequence[str], losses, *, vmax: float | None = None) -> str:
    """Per-token loss as heat-text: each token's background is redder the higher its loss.
    Token text comes from the model's tokenizer and the user's probe text: escaped here."""
    vals = _arr(losses)
    top = vmax if vmax is not None else (float(np.nanmax(vals)) if len(vals) else 1.0)
    top = top if np.isfinite(top) and top > 0 else 1.0
    parts = []
    for i, label in enumerate(token_labels):
        v = vals[i] if i < len(vals) else np.nan
        if not np.isfinite(v):
            parts.append(
                f'<span style="padding:1px 2px;border:1px dotted #bbb;unicode-bidi:isolate" title="no target">'
                f"{html.escape(str(label))}</span>"
            )
            continue
        a = min(1.0, max(0.0, v / top))
        parts.append(
            f'<span style="background:rgba(214,39,40,{a:.2f});padding:1px 2px;margin:1px;'
            f'border-radius:3px;white-space:pre-wrap;unicode-bidi:isolate" title="loss {v:.2f}">'
            f"{html.escape(str(label))}</span>"
        )
    return '<div style="line-height:2;font-family:monospace">' + "".join(parts) + "</div>"
