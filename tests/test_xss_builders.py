"""Every HTML and figure builder fed the XSS corpus (tests/xss_corpus.py), without a browser.

A figure passes when no string in its JSON holds a tag from the corpus unescaped (plotly renders
<a>, <b>, <i>, <br>, <sup> in ticks, legends, hover and cell text) while the escaped text is
there. An HTML fragment passes when its only tags are the builder's own, with the builder's own
attributes, and its text reads back as the token labels. tests/browser/test_xss.py checks the
same surfaces in Chromium.
"""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser

import numpy as np
import pytest

from explorer import widgets
from explorer.plots import activations, attention, embeddings, sampling, training
from explorer.plots.common import token_label
from tests.xss_corpus import LINES, PAYLOADS, TEXT

LABELS = [token_label(line) for line in LINES]
T = len(LABELS)
# tag openings the corpus carries; none may reach a figure unescaped
TAGS = ("<script", "<img", "<svg", "<iframe", "<a ", "<b>x", "<i>", "<sup>", "<javascript:")


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _strings(v)


def _figures():
    rng = np.random.default_rng(0)
    sq = rng.random((T, T))
    stages = {s: np.full(T, 1.0 / T) for s in ("raw", "temperature", "top_k", "top_p", "final")}
    grid = [[LABELS[(i + j) % T] for j in range(T)] for i in range(3)]
    curves = [{"label": line, "steps": [1, 2], "values": [2.0, 1.0]} for line in LINES]
    xy = rng.standard_normal((T, 2))
    yield "stage_bars", sampling.stage_bars(stages, LABELS, T)
    yield "head_heatmap", attention.head_heatmap(sq, LABELS, 0, 0)
    yield "step_figure", attention.step_figure(LABELS, sq[0], sq[1], sq[2], T - 1)
    yield "vector_strip", attention.vector_strip(sq[:, :4], LABELS, "k")
    yield (
        "embedding_map",
        embeddings.embedding_map(
            xy, LABELS, categories=["other"] * T, selected=0, neighbours=[1, 2]
        ),
    )
    yield "embedding_map_len", embeddings.embedding_map(xy, LABELS, "length", values=np.ones(T))
    yield "contextual_path", embeddings.contextual_path(xy, LABELS, "layer 0")
    yield "neighbour_bars", embeddings.neighbour_bars(LABELS, np.linspace(1, 0, T), "near")
    yield "residual_norms", activations.residual_norms(["a", "b"], sq[:2], LABELS)
    yield "neuron_heatmap", activations.neuron_heatmap(sq[:3], [0, 1, 2], LABELS)
    yield "logit_lens", activations.logit_lens_figure(["a", "b", "c"], sq[:3], grid, LABELS)
    yield "overlay", training.overlay_figure(curves)
    yield "attention_grid", training.attention_grid_figure(sq[None, None], LABELS)
    yield "embedding_map_tl", training.embedding_map_figure(xy, LABELS, categories=["x"] * T)


@pytest.mark.parametrize("name,fig", [pytest.param(n, f, id=n) for n, f in _figures()])
def test_figures_hold_no_corpus_markup(name, fig):
    strings = list(_strings(json.loads(fig.to_json())))
    for tag in TAGS:
        assert not any(tag in s for s in strings), f"{name}: {tag!r} unescaped"
    assert any("&lt;script&gt;" in s or "&lt;scr" in s for s in strings), f"{name}: no label"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = set(), set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.update(a for a, _ in attrs)

    def handle_data(self, data):
        self.text.append(data)


def _parse(fragment: str) -> _Tags:
    p = _Tags()
    p.feed(fragment)
    p.close()
    return p


def _records():
    return [
        {"id": i, "label": line, "hex": line.encode().hex(), "n_bytes": len(line.encode())}
        for i, line in enumerate(LINES)
    ]


class _Step:
    def __init__(self, i):
        self.token_id, self.prob = i, 0.5
        self.top_ids, self.top_probs = [i, (i + 1) % T], [0.5, 0.25]


def _fragments():
    rows = [{"start": 0, "input": LINES[:-1], "target": LINES[1:]}]
    losses = np.linspace(0.1, 5, T)
    yield "chips", widgets.chips_html(_records()), {"div", "span", "sub"}
    yield "segments", widgets.segments_html(LINES), {"div", "span"}
    steps = [_Step(i) for i in range(T)]
    yield "generation", widgets.generation_html(LINES[:2], steps, LINES), {"div", "span"}
    yield "windows", widgets.windows_html(rows), {"div", "span", "table", "tr", "td", "th"}
    yield "loss_heat", activations.loss_heat_html(LINES, losses), {"div", "span"}
    yield "token_loss", training.token_loss_html(LINES, losses), {"div", "span"}


ATTRS = {"class", "style", "title", "data-tip"}


@pytest.mark.parametrize(
    "name,fragment,tags", [pytest.param(*args, id=args[0]) for args in _fragments()]
)
def test_html_fragments_carry_only_their_own_markup(name, fragment, tags):
    p = _parse(fragment)
    assert p.tags <= tags, f"{name}: tags {p.tags - tags}"
    assert p.attrs <= ATTRS, f"{name}: attributes {p.attrs - ATTRS}"
    shown = "".join(p.text)
    for line in (PAYLOADS["script"], PAYLOADS["plotly_tags"], PAYLOADS["entities"]):
        label = token_label(line)
        assert label in shown or line in shown, f"{name}: {line!r} not shown as typed"


def test_md_helpers_quote_the_corpus():
    for line in LINES + [TEXT, "`a``b`", " x "]:
        code = widgets.md_code(line)
        fence = code[: len(code) - len(code.lstrip("`"))]
        assert "\n" not in code and fence not in code[len(fence) : -len(fence)]
        lit = widgets.md_literal(line)
        assert all(lit.count("\\" + ch) >= line.count(ch) for ch in "<>[]$*_`:&")
        assert ":material/" not in code + lit  # Streamlit would rewrite it to :material_
    assert html.unescape(widgets.esc(TEXT)) == TEXT
