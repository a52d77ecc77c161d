"""AppTest for the Attention page: grid, a simulated thumbnail click, scores, step-through."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app._inside_model import use_model

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "attention.py")
PROMPT = "Once upon a time, Lily saw a red fox. Lily saw a red fox again."


@pytest.fixture
def lm(monkeypatch):
    return use_model(monkeypatch)


def page(prompt=PROMPT) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["prompt"] = prompt
    return at


def charts(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def test_renders_every_head(lm):
    at = page().run()
    assert not at.exception, at.exception
    grid = charts(at)[0]
    L, H = lm.config.n_layers, lm.config.n_heads
    assert grid["layout"]["xaxis"]["ticktext"] == [f"h{h}" for h in range(H)]
    assert grid["layout"]["yaxis"]["ticktext"] == [f"layer {i}" for i in range(L)]
    big = charts(at)[1]
    assert "Layer 0, head 0" in big["layout"]["title"]["text"]
    n_tokens = len(lm.tokenizer.encode(PROMPT))
    assert len(big["data"][0]["x"]) == n_tokens
    assert len(at.markdown) >= 3  # one sentence per head role


def test_thumbnail_click_enlarges_that_head(lm):
    at = page().run()
    L, H = lm.config.n_layers, lm.config.n_heads
    at.session_state["att_grid"] = {
        "selection": {
            "points": [{"customdata": (L - 1) * H + H - 1}],
            "point_indices": [0],
            "box": [],
            "lasso": [],
        }
    }
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="att_layer").value == L - 1
    assert at.selectbox(key="att_head").value == H - 1
    assert f"Layer {L - 1}, head {H - 1}" in charts(at)[1]["layout"]["title"]["text"]
    assert any(f"Layer {L - 1}, head {H - 1}, step by step" in h.value for h in at.subheader)
    # the selectors still work after a click (the old click is not re-applied)
    at.selectbox(key="att_layer").set_value(0).run()
    assert "Layer 0, head" in charts(at)[1]["layout"]["title"]["text"]


def test_step_through_changes_with_the_query(lm):
    at = page().run()
    n = len(lm.tokenizer.encode(PROMPT))
    table = at.dataframe[0].value
    assert len(table) == n and (table["after mask"] > float("-inf")).all()  # last query sees all
    assert abs(table["softmax weight"].sum() - 1) < 1e-5
    at.slider(key="att_query").set_value(2).run()
    table = at.dataframe[0].value
    assert (table["after mask"][3:] == float("-inf")).all()
    assert (table["softmax weight"][3:] == 0).all()
    steps = at.dataframe[1].value
    assert list(steps["step"])[:3] == ["query vector q", "key vectors k", "dot products"]
    assert steps["step"].iloc[-1] == "output"


def test_empty_prompt_is_a_message(lm):
    at = page("").run()
    assert not at.exception and at.info


def test_one_token_prompt(lm):
    at = page("Lily").run()
    assert not at.exception, at.exception
    assert len(at.dataframe[0].value) == len(lm.tokenizer.encode("Lily"))


def test_head_from_the_url(lm):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["prompt"] = PROMPT
    at.query_params["att_layer"] = str(lm.config.n_layers - 1)
    at.query_params["att_head"] = "999"  # out of range: falls back to the default
    at.run()
    assert not at.exception
    assert at.selectbox(key="att_layer").value == lm.config.n_layers - 1
    assert at.selectbox(key="att_head").value == 0


def test_head_scores_come_from_a_release_manifest(lm, tmp_path):
    import dataclasses
    import json as _json

    from explorer import inside

    L, H = lm.config.n_layers, lm.config.n_heads
    (tmp_path / "ckpt" / "step_000010").mkdir(parents=True)
    (tmp_path / "ckpt" / "LATEST").write_text("step_000010")
    fake = {k: [[0.5] * H] * L for k in ("previous_token", "first_token", "induction")}
    manifest = {"checkpoint": "step_000010", "head_scores": fake}
    (tmp_path / "manifest.json").write_text(_json.dumps(manifest))
    released = dataclasses.replace(lm, run_dir=tmp_path)
    got = inside.head_scores("released-test", released)
    assert all((v == 0.5).all() and v.shape == (L, H) for v in got.values())
    manifest["checkpoint"] = "step_000005"  # stale: scores of another checkpoint are not used
    (tmp_path / "manifest.json").write_text(_json.dumps(manifest))
    got = inside.head_scores("stale-test", released)
    assert not (got["induction"] == 0.5).all()
