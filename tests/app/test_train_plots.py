"""The Train page's figure builders are pure: synthetic arrays in, figures (or escaped HTML) out."""

import numpy as np
import plotly.graph_objects as go

from explorer.plots import training as tp


def test_decimate_keeps_ends_and_bounds_size():
    x = np.arange(10_000)
    dx, dy = tp.decimate(x, x * 2, max_points=100)
    assert len(dx) <= 101 and dx[0] == 0 and dx[-1] == 9999
    assert np.array_equal(dy, dx * 2)
    sx, sy = tp.decimate([1, 2], [3, 4])
    assert list(sx) == [1, 2] and list(sy) == [3, 4]


def test_ema_smooths_and_tolerates_nan():
    out = tp.ema([1.0, np.nan, 3.0], alpha=0.5)
    assert out[0] == 1.0 and out[1] == 1.0 and out[2] == 2.0
    assert np.array_equal(tp.ema([1.0, 5.0], alpha=1.0), [1.0, 5.0])


def test_loss_figure_has_train_val_and_cursor():
    steps = np.arange(1, 101)
    fig = tp.loss_figure(
        steps,
        5 - np.log(steps),
        [10, 50, 100],
        [4.5, 3.0, 2.5],
        eval_train_loss=[4.4, 2.9, 2.3],
        cursor=50,
        smooth=0.3,
    )
    names = [t.name for t in fig.data]
    assert names == ["train (per step)", "train (eval)", "val"]
    assert list(fig.data[2].y) == [4.5, 3.0, 2.5]
    assert fig.layout.shapes[0].x0 == 50  # the step cursor
    assert fig.layout.xaxis.title.text == "step"


def test_empty_inputs_give_a_message_not_an_error():
    for fig in (
        tp.loss_figure([], []),
        tp.lr_figure([], []),
        tp.grad_norm_figure([], []),
        tp.layer_grad_norms_figure([], {}),
        tp.tokens_per_s_figure([], []),
        tp.overlay_figure([]),
        tp.attention_grid_figure(np.zeros((0,)), []),
        tp.embedding_map_figure(np.zeros((0, 2)), []),
        tp.head_scores_figure([], np.zeros((0,))),
        tp.head_scores_at_step_figure(np.zeros((0,))),
    ):
        assert isinstance(fig, go.Figure) and fig.layout.annotations


def test_grad_norm_marks_clipping_events():
    steps = np.arange(10)
    g = np.array([0.5, 2.0, 0.7, 3.0, 0.4, 0.3, 0.2, 1.5, 0.1, 0.1])
    fig = tp.grad_norm_figure(steps, g, g > 1.0, clip=1.0, cursor=3)
    clip_trace = fig.data[1]
    assert clip_trace.name == "clipped (3 steps)"
    assert list(clip_trace.x) == [1, 3, 7]
    assert fig.layout.yaxis.type == "log"


def test_layer_grad_norms_accepts_dict_or_matrix():
    steps = np.arange(5)
    fig = tp.layer_grad_norms_figure(steps, {"blocks.0": np.ones(5), "blocks.1": np.ones(5) * 2})
    assert [t.name for t in fig.data] == ["blocks.0", "blocks.1"]
    fig2 = tp.layer_grad_norms_figure(steps, np.ones((5, 3)))
    assert len(fig2.data) == 3


def test_overlay_draws_each_run_and_skips_empty():
    curves = [
        {"label": "pre-LN", "steps": [1, 2, 3], "values": [3, 2, 1]},
        {"label": "post-LN val", "steps": [1, 3], "values": [3, 2], "dash": True},
        {"label": "empty", "steps": [], "values": []},
    ]
    fig = tp.overlay_figure(curves, smooth=0.5)
    assert [t.name for t in fig.data] == ["pre-LN", "post-LN val"]
    assert fig.data[1].line.dash == "dash"


def test_attention_grid_one_panel_per_head():
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 5, 5)).astype(np.float32)
    fig = tp.attention_grid_figure(a, list("abcde"), step=40)
    assert len(fig.data) == 6
    assert "step 40" in fig.layout.title.text
    assert np.allclose(np.asarray(fig.data[4].z), a[1, 1])


def test_embedding_map_keeps_a_fixed_extent_across_steps():
    maps = np.random.default_rng(1).normal(size=(3, 20, 2))
    ext = tp.map_extent(maps)
    assert ext[0] < maps[..., 0].min() and ext[1] > maps[..., 0].max()
    cats = ["animal"] * 5 + ["colour"] * 5
    fig = tp.embedding_map_figure(
        maps[1], [f"t{i}" for i in range(20)], categories=cats, extent=ext
    )
    assert {t.name for t in fig.data} == {"animal", "colour", "other"}
    assert tuple(fig.layout.xaxis.range) == (ext[0], ext[1])


def test_head_scores_over_steps_and_at_step():
    scores = np.random.default_rng(2).random((4, 2, 3, 3))
    fig = tp.head_scores_figure([0, 10, 20, 30], scores, kind=2, cursor=20)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (6, 4)  # (L*H, S)
    assert np.allclose(z[:, 1], scores[1, :, :, 2].reshape(-1))
    assert "induction" in fig.layout.title.text
    fig2 = tp.head_scores_at_step_figure(scores[3], step=30)
    assert len(fig2.data) == 3


def test_token_loss_html_escapes_token_text():
    out = tp.token_loss_html(["<script>alert(1)</script>", " ok", "&"], [0.5, 2.0, np.nan])
    assert "<script>" not in out
    assert "&lt;script&gt;" in out and "&amp;" in out
    assert "rgba(214,39,40,1.00)" in out  # the highest loss is the reddest
    assert "no target" in out


def test_plotly_labels_are_escaped():
    fig = tp.embedding_map_figure(np.zeros((2, 2)), ["<b>x</b>", "a&b"])
    assert list(fig.data[0].text) == ["&lt;b&gt;x&lt;/b&gt;", "a&amp;b"]
    att = tp.attention_grid_figure(np.zeros((1, 1, 2, 2)), ["<i>", "ok"])
    assert list(att.data[0].x) == ["0:&lt;i&gt;", "1:ok"]
