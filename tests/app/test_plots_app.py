"""Figure builders of the Tokenize, Architecture and Sample pages: arrays in, figures out."""

import numpy as np
import plotly.graph_objects as go
import pytest

from core.config import ModelConfig
from explorer.plots import arch, common, sampling, tokens


def test_token_label_makes_every_token_visible():
    assert common.token_label(" the") == "␣the"
    assert common.token_label("\n") == "↵"
    assert common.token_label("a\u200bb") == "a<U+200B>b"
    assert common.token_label("") == "∅"
    assert common.token_label("x" * 100, 10).endswith("…")
    assert common.token_label("שלום") == "שלום"


def test_prob_colour_is_monotone_in_darkness():
    def lum(c):
        r, g, b = (int(v) for v in c[4:-1].split(","))
        return 0.3 * r + 0.59 * g + 0.11 * b

    lums = [lum(common.prob_colour(p)) for p in np.linspace(0, 1, 11)]
    assert all(a >= b for a, b in zip(lums, lums[1:]))
    assert common.prob_colour(-1) == common.prob_colour(0)


def stages_for(V=50, seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.dirichlet(np.ones(V))
    top_k = raw.copy()
    top_k[np.argsort(-raw)[5:]] = 0
    return {
        "raw": raw,
        "temperature": raw,
        "top_k": top_k,
        "top_p": top_k,
        "final": top_k / top_k.sum(),
    }


def test_stage_bars_share_one_token_axis():
    stages = stages_for()
    labels = [f"t{i}" for i in range(50)]
    fig = sampling.stage_bars(stages, labels, top_n=10)
    assert [t.name for t in fig.data] == [common.STAGE_LABELS[s] for s in common.STAGES]
    xs = {tuple(t.x) for t in fig.data}
    assert len(xs) == 1  # every stage on the same axis
    ids = sampling.axis_tokens(stages, 10)
    raw_bar = np.asarray(fig.data[0].y)
    assert np.allclose(raw_bar, stages["raw"][ids])
    assert list(raw_bar) == sorted(raw_bar, reverse=True)
    # the top-k stage shows removed tokens at zero
    assert (np.asarray(fig.data[2].y) == 0).sum() == len(ids) - 5


def test_stage_bars_labels_are_unique_even_for_duplicate_text():
    stages = stages_for(V=10)
    fig = sampling.stage_bars(stages, ["same"] * 10, top_n=10)
    assert len(set(fig.data[0].x)) == 10


def test_stage_bars_show_markup_in_tokens_literally():
    stages = stages_for(V=10)
    labels = ["<br>", "<b>x</b>", '<a href="javascript:alert(1)">y</a>'] + [
        f"t{i}" for i in range(7)
    ]
    fig = sampling.stage_bars(stages, labels, top_n=10)
    shown = list(fig.layout.xaxis.ticktext) + list(fig.data[0].hovertext)
    assert not any("<" in t or ">" in t for t in shown)  # plotly would read them as markup
    assert any("&lt;br&gt;" in t for t in shown)


def test_diversity_figure_sorted_by_temperature():
    rows = [
        dict(temperature=1.5, distinct_1=0.9, distinct_2=0.95, mean_logprob=-4.0),
        dict(temperature=0.5, distinct_1=0.3, distinct_2=0.4, mean_logprob=-1.0),
    ]
    fig = sampling.diversity_figure(rows)
    assert list(fig.data[0].x) == [0.5, 1.5]
    assert list(fig.data[2].y) == [-1.0, -4.0]


def test_tokenizer_comparison_and_merge_curve():
    fig = tokens.tokenizer_comparison(
        [
            dict(name="bpe", n_tokens=10, chars_per_token=4.0),
            dict(name="char", n_tokens=40, chars_per_token=1.0),
        ]
    )
    assert list(fig.data[0].x) == [10, 40]
    assert "4.00 chars/token" in fig.data[0].text[0]
    curve = tokens.merge_curve([40, 30, 20, 10], current=2)
    assert list(curve.data[1].x) == [2] and list(curve.data[1].y) == [20]
    curve = tokens.merge_curve([40, 30, 20], current=1, steps=[0, 7, 90])
    assert list(curve.data[0].x) == [0, 7, 90] and list(curve.data[1].x) == [7]


def test_stage_bars_log_axis():
    fig = sampling.stage_bars(stages_for(), [f"t{i}" for i in range(50)], log=True)
    assert fig.layout.yaxis.type == "log"


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(),
        ModelConfig(norm_position="post", activation="swiglu", pos_encoding="rope", norm="rmsnorm"),
        ModelConfig(pos_encoding="none", tie_embeddings=False, n_layers=1),
    ],
)
def test_architecture_diagram_follows_the_config(cfg):
    boxes = arch.diagram_boxes(cfg)
    ids = [b["id"] for b in boxes]
    block = [b["id"] for b in boxes if b["in_block"]]
    if cfg.norm_position == "pre":
        assert block == ["norm1", "attn", "add", "norm2", "mlp", "add"]
    else:
        assert block == ["attn", "add", "norm1", "mlp", "add", "norm2"]
    assert ids[0] == "ids" and ids[-1] == "logits"
    fig = arch.architecture_diagram(cfg, {"attn": "123 params"})
    texts = [a.text for a in fig.layout.annotations]
    assert f"<b>× L = {cfg.n_layers} blocks</b>" in texts
    assert "123 params" in texts
    assert any(str(cfg.ff_dim) in t for t in texts)


def test_breakdowns_leave_out_total():
    fig = arch.param_breakdown({"embeddings": 100, "attention": 50, "total": 150})
    assert list(fig.data[0].y) == ["embeddings", "attention"]
    mem = arch.memory_breakdown({"weights": 10, "grads": 10, "adamw": 20, "total": 40})
    assert len(mem.data) == 3 and isinstance(mem, go.Figure)
