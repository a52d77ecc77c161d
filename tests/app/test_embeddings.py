"""AppTest for the Embeddings page: renders, controls, a simulated click on a point, search."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app._inside_model import use_model

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "embeddings.py")


@pytest.fixture
def lm(monkeypatch):
    return use_model(monkeypatch)


def page(method="pca") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["emb_method"] = method  # UMAP's first fit compiles for ~40 s: not in tests
    return at


def figure(at, key):
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        if el.proto.id and key in el.proto.id or spec.get("_key") == key:
            return spec
    raise AssertionError(f"no chart {key}")


def charts(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def test_renders_a_pca_map_of_every_token(lm):
    at = page().run()
    assert not at.exception, at.exception
    fig = charts(at)[0]
    assert "PCA" in fig["layout"]["title"]["text"]
    assert f"{lm.config.vocab_size:,} tokens" in fig["layout"]["title"]["text"]
    names = [tr["name"] for tr in fig["data"]]
    assert any(name.startswith("other") for name in names)
    assert len(names) >= 2, names  # "other" plus at least one TinyTales category


def test_colour_by_frequency_switches_to_one_trace(lm):
    at = page().run()
    at.radio(key="emb_colour").set_value("frequency").run()
    assert not at.exception
    fig = charts(at)[0]
    assert len(fig["data"]) == 1 and "colorbar" in fig["data"][0]["marker"]


def test_clicking_a_point_selects_it_and_lists_neighbours(lm):
    at = page().run()
    target = 300
    at.session_state["emb_map"] = {
        "selection": {
            "points": [{"customdata": target, "point_index": 0}],
            "point_indices": [0],
            "box": [],
            "lasso": [],
        }
    }
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["emb_token"] == target
    fig = charts(at)[0]
    names = [tr["name"] for tr in fig["data"]]
    assert names[-2:] == ["nearest neighbours", "selected"]
    assert any("Selected" in m.value for m in at.markdown)
    bars = charts(at)[1]
    assert len(bars["data"][0]["y"]) == 10
    at.slider(key="emb_k").set_value(5).run()
    assert len(charts(at)[1]["data"][0]["y"]) == 5
    at.button(key="emb_clear").click().run()
    assert at.session_state["emb_token"] is None


def test_search_selects_the_best_match(lm):
    at = page().run()
    at.text_input(key="emb_search").input(" the").run()
    assert not at.exception
    tok = at.session_state["emb_token"]
    assert tok is not None and lm.tokenizer.token_label(tok).strip() == "the"


def test_position_and_contextual_sections(lm):
    at = page().run()
    kinds = [c["layout"].get("title", {}).get("text", "") for c in charts(at)]
    assert any("Position similarity" in k for k in kinds)
    assert any("Your text at" in k for k in kinds)
    at.radio(key="emb_stage").set_value("embed").run()
    assert any(
        "input embedding" in c["layout"]["title"]["text"]
        for c in charts(at)
        if "title" in c["layout"]
    )


def test_precomputed_umap_is_shown_without_computing(lm, tmp_path, monkeypatch):
    from explorer import inside

    table = inside.embedding_table(inside.model_key(lm), lm)
    monkeypatch.setattr(
        inside,
        "available_map",
        lambda key, lm_, method: ((table["matrix"][:, :2] * 1).astype("float32"), "precomputed"),
    )
    monkeypatch.setattr(inside, "start_projection", lambda *a: pytest.fail("must not compute"))
    at = page("umap").run()
    assert not at.exception
    assert "UMAP" in charts(at)[0]["layout"]["title"]["text"]


def test_background_job_fills_the_map(lm, monkeypatch, tmp_path):
    import time

    import numpy as np

    from core import projection
    from explorer import inside

    key = inside.model_key(lm)
    monkeypatch.setattr(projection, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(inside, "_precomputed", lambda *a: {})
    monkeypatch.setattr(inside, "_JOBS", {})
    calls = []

    def fake_project(matrix, method, progress=None, digest=None, **kw):
        calls.append(method)
        return np.ones((len(matrix), 2), np.float32)

    monkeypatch.setattr(projection, "project", fake_project)
    assert inside.available_map(key, lm, "tsne") == (None, "")
    job = inside.start_projection(key, lm, "tsne")
    assert inside.start_projection(key, lm, "tsne") is job  # shared, not started twice
    for _ in range(100):
        if job.state == "done":
            break
        time.sleep(0.05)
    assert job.state == "done" and calls == ["tsne"]
    xy, source = inside.available_map(key, lm, "tsne")
    assert xy.shape == (lm.config.vocab_size, 2) and source == "computed"


def test_contextual_layer_choice(lm):
    at = page().run()
    at.selectbox(key="emb_layer").set_value(0).run()
    assert not at.exception
    assert any("layer 0" in c["layout"].get("title", {}).get("text", "") for c in charts(at))
