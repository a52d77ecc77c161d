"""Figure builders of the Embeddings, Attention and Activations pages: arrays in, figures out."""

import numpy as np
import plotly.graph_objects as go

from explorer.plots import activations as A
from explorer.plots import attention as T
from explorer.plots import embeddings as E

EVIL = '<img src=x onerror="alert(1)">'


def test_embedding_map_by_category_carries_ids_and_escapes():
    xy = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    labels = ["a", "b", EVIL, "d", "e", "f"]
    cats = ["other", "animals", "animals", "colours", "other", "colours"]
    fig = E.embedding_map(xy, labels, "category", categories=cats, selected=2, neighbours=[1, 3])
    names = [t.name for t in fig.data]
    assert (
        names[0].startswith("other") and "nearest neighbours" in names and names[-1] == "selected"
    )
    ids = np.concatenate([np.asarray(t.customdata) for t in fig.data[:3]])
    assert sorted(ids.tolist()) == list(range(6))
    assert isinstance(fig.data[0], go.Scatter)  # small vocabularies draw as SVG
    big = E.embedding_map(
        np.zeros((E.GL_FROM, 2)), ["t"] * E.GL_FROM, "length", values=np.ones(E.GL_FROM)
    )
    assert isinstance(big.data[0], go.Scattergl)
    all_text = " ".join(" ".join(t.text) for t in fig.data)
    assert "<img" not in all_text and "&lt;img" in all_text
    assert list(fig.data[-1].customdata) == [2]


def test_embedding_map_numeric_colour():
    xy = np.zeros((4, 2), np.float32)
    fig = E.embedding_map(xy, list("abcd"), "frequency", values=np.array([0, 9, 99, 999]))
    assert len(fig.data) == 1
    np.testing.assert_allclose(fig.data[0].marker.color, [0, 1, 2, 3], atol=1e-6)
    fig = E.embedding_map(xy, list("abcd"), "length", values=np.array([1, 2, 3, 4]))
    assert fig.data[0].marker.colorbar.title.text == "characters"


def test_position_and_contextual_figures():
    sim = np.eye(5, dtype=np.float32)
    fig = E.position_similarity(sim, "learned")
    assert fig.data[0].z.shape == (5, 5) and "learned" in fig.layout.title.text
    fig = E.contextual_path(np.zeros((3, 2)), ["x", "y", EVIL], "L1 mlp")
    assert fig.data[0].mode == "lines+markers+text" and "<img" not in fig.data[0].text[2]
    fig = E.neighbour_bars(["p", "q"], np.array([0.9, 0.5]), "t")
    assert list(fig.data[0].x) == [0.5, 0.9]


def test_head_grid_mosaic_and_click_targets():
    L, H, Tn = 2, 3, 8
    pats = np.random.default_rng(0).random((L, H, Tn, Tn)).astype(np.float32)
    fig = T.head_grid(pats, selected=(1, 2))
    gap, step = T.grid_geometry(Tn)
    z = fig.data[0].z
    assert z.shape == (L * step - gap, H * step - gap)
    # tile (1, 2) holds head (1, 2)'s lower triangle; above the diagonal is empty
    tile = z[step : step + Tn, 2 * step : 2 * step + Tn]
    assert np.allclose(np.tril(tile), np.tril(pats[1, 2]), equal_nan=True)
    assert np.isnan(tile[0, 1])
    targets = np.asarray(fig.data[1].customdata)
    assert targets.tolist() == list(range(L * H)) and fig.data[1].text[-1] == "layer 1, head 2"
    assert [T.head_from_click(c, H) for c in (5, [5], {"0": 1, "1": 2}, [1, 2], None)] == [
        (1, 2),
        (1, 2),
        (1, 2),
        (1, 2),
        None,
    ]
    assert len(fig.layout.shapes) == 1


def test_head_heatmap_and_scores():
    pat = np.tril(np.ones((4, 4), np.float32)) / np.arange(1, 5)[:, None]
    fig = T.head_heatmap(pat, ["a", "b", EVIL, "a"], 0, 1)
    assert len(set(fig.data[0].x)) == 4 and "&lt;img" in fig.data[0].x[2]
    assert np.isnan(fig.data[0].z[0, 3])
    s = {k: np.full((2, 3), 0.5, np.float32) for k in T.ROLE_TITLES}
    fig = T.head_scores_figure(s)
    assert len(fig.data) == 3 and set(T.ROLE_TEXT) == set(T.ROLE_TITLES)


def test_step_figure_masks_the_future():
    fig = T.step_figure(["a", "b", "c"], [1, 2, 3], [0.5, 1, 1.5], [0.4, 0.6, 0], query=1)
    assert len(fig.data) == 3
    assert fig.data[1].text[2].startswith("−∞") and fig.data[1].y[2] == 0
    fig = T.vector_strip(np.ones((2, 4)), ["q ·0", "k ·1"], "q")
    assert fig.data[0].z.shape == (2, 4)


def test_activation_figures():
    labels = ["a", "b", EVIL]
    fig = A.residual_norms(["embed", "L0 attn"], np.ones((2, 3)), labels)
    assert fig.data[0].z.shape == (2, 3) and "&lt;img" in fig.data[0].x[2]
    fig = A.neuron_histogram(np.linspace(-1, 1, 5), np.array([1, 2, 3, 4]), 0)
    assert len(fig.data[0].x) == 4
    fig = A.neuron_heatmap(np.ones((3, 2)), [7, 9], labels)
    assert fig.data[0].z.shape == (2, 3) and list(fig.data[0].y) == ["n7", "n9"]
    rows = [
        {"norm": "ln1", "out_rms_mean": 1.0, "in_rms_mean": 2.0},
        {"norm": "ln_f", "out_rms_mean": 1.0},
    ]
    assert len(A.norm_stats_figure(rows).data) == 2
    fig = A.logit_lens_figure(["L0 attn"], np.array([[0.1, 0.5, 0.9]]), [["x", EVIL, "z"]], labels)
    assert fig.data[0].text[0][1] == '&lt;img src=x onerror="alert(1)"&gt;'


def test_loss_heat_html_escapes_every_token():
    html_out = A.loss_heat_html(["<script>", " ok", "&"], np.array([np.nan, 0.1, 5.0]))
    assert "<script>" not in html_out and "&lt;script&gt;" in html_out and "&amp;" in html_out
    assert html_out.count("<span") == 3 and "nothing to predict" in html_out
    assert A.loss_colour(float("nan"), 1) != A.loss_colour(0.0, 1) != A.loss_colour(2.0, 1)
