"""What every figure shares: colour scales, stage colours and how a token is labelled.

Defined once so a token looks the same on the Tokenize chips, the sampling bars and the
attention axes, and a probability has one colour everywhere. Pure Python: no streamlit here.
"""

from __future__ import annotations

import unicodedata

import plotly.graph_objects as go

# Qualitative palette for token chips (pastel enough that black text stays readable).
CHIP_PALETTE = (
    "#fde68a",
    "#bfdbfe",
    "#bbf7d0",
    "#fecaca",
    "#ddd6fe",
    "#fed7aa",
    "#a5f3fc",
    "#fbcfe8",
)

# One sequential scale for probabilities (0 -> pale, 1 -> deep), used by figures and chips.
PROB_SCALE = "Viridis"
_PROB_STOPS = (
    (0.0, (253, 231, 37)),
    (0.25, (94, 201, 98)),
    (0.5, (33, 145, 140)),
    (0.75, (59, 82, 139)),
    (1.0, (68, 1, 84)),
)

# The sampling pipeline, in order; each stage keeps one colour on every chart.
STAGES = ("raw", "temperature", "top_k", "top_p", "final")
STAGE_LABELS = {
    "raw": "raw softmax",
    "temperature": "÷ temperature",
    "top_k": "top-k",
    "top_p": "top-p",
    "final": "renormalised",
}
STAGE_COLOURS = {
    "raw": "#94a3b8",
    "temperature": "#60a5fa",
    "top_k": "#f59e0b",
    "top_p": "#ef4444",
    "final": "#10b981",
}

# Whitespace and invisible characters get a visible stand-in so a token is never blank.
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}

FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"


def chip_colour(index: int) -> str:
    """The chip colour for the index-th token of a text (neighbours always differ)."""
    return CHIP_PALETTE[index % len(CHIP_PALETTE)]


def _is_invisible(ch: str) -> bool:
    # Cf = format chars (zero-width space/joiners, bidi marks); Cc = control chars.
    return unicodedata.category(ch) in ("Cf", "Cc", "Zl", "Zp") and ch not in _VISIBLE


def token_label(text: str, max_len: int = 40) -> str:
    """A one-line, never-empty display of a token's text.

    Spaces become ␣, newlines ↵, tabs ⇥; zero-width and control characters become <U+200B>-style
    codes. The result is plain text: callers still html.escape it before putting it into HTML.
    """
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif _is_invisible(ch):
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    label = "".join(out) or "∅"
    if len(label) > max_len:
        label = label[: max_len - 1] + "…"
    return label


def prob_colour(p: float) -> str:
    """An rgb() string for a probability in [0, 1] on PROB_SCALE (clipped)."""
    p = min(1.0, max(0.0, float(p)))
    for (x0, c0), (x1, c1) in zip(_PROB_STOPS, _PROB_STOPS[1:]):
        if p <= x1:
            t = (p - x0) / (x1 - x0)
            r, g, b = (round(a + (b_ - a) * t) for a, b_ in zip(c0, c1))
            return f"rgb({r},{g},{b})"
    r, g, b = _PROB_STOPS[-1][1]
    return f"rgb({r},{g},{b})"


def text_colour_on(p: float) -> str:
    """Black or white, whichever reads on prob_colour(p)."""
    return "#111" if p < 0.45 else "#fff"


def fmt_count(n: float) -> str:
    """12_345_678 -> '12.3M'; small numbers stay exact."""
    n = float(n)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def fmt_bytes(n: float) -> str:
    """Bytes with binary units: 1536 -> '1.5 KiB'."""
    n = float(n)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def base_layout(fig: go.Figure, *, height: int = 360, title: str | None = None) -> go.Figure:
    """The house layout: compact margins, one font, white background."""
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        font=dict(family=FONT, size=13),
        plot_bgcolor="white",
        paper_bgcolor="white",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    if title:
        fig.update_layout(title=dict(text=title, x=0, xanchor="left"))
    return fig
