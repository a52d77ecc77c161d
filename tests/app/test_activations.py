"""AppTest for the Activations page: heat-text (escaped), logit lens, norms, neurons."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app._inside_model import use_model

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "activations.py")


@pytest.fixture
def lm(monkeypatch):
    return use_model(monkeypatch)


def page(prompt="Once upon a time, a little fox") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["prompt"] = prompt
    return at


def charts(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def titles(at) -> list[str]:
    return [c["layout"].get("title", {}).get("text", "") for c in charts(at)]


def test_renders_every_view(lm):
    at = page().run()
    assert not at.exception, at.exception
    t = titles(at)
    assert any("Logit lens" in x for x in t) and any("Residual-stream" in x for x in t)
    assert any("MLP activations" in x for x in t) and any("Norm layers" in x for x in t)
    lens = next(c for c in charts(at) if "Logit lens" in c["layout"]["title"]["text"])
    assert lens["data"][0]["y"] == [
        f"L{i} {s}" for i in range(lm.config.n_layers) for s in ("attn", "mlp")
    ]


def test_layer_and_k_controls(lm):
    at = page().run()
    at.selectbox(key="act_layer").set_value(lm.config.n_layers - 1).run()
    assert any(f"Layer {lm.config.n_layers - 1}: MLP" in x for x in titles(at))
    at.slider(key="act_k").set_value(4).run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 4
    neurons = next(c for c in charts(at) if "Most active" in c["layout"]["title"]["text"])
    assert len(neurons["data"][0]["y"]) == 4


def test_heat_text_escapes_html(lm):
    at = page("<script>alert(1)</script> <img src=x onerror=alert(2)>").run()
    assert not at.exception
    html_blocks = [el.proto.body for el in at.get("html")]
    assert html_blocks and all("<script" not in b and "<img" not in b for b in html_blocks)
    assert any("&lt;" in b for b in html_blocks)


def test_empty_prompt_is_a_message(lm):
    at = page("").run()
    assert not at.exception and at.info


def test_lens_colour_switch_and_mean_loss(lm):
    at = page().run()
    at.radio(key="act_lens_mode").set_value("actual").run()
    assert not at.exception
    lens = next(c for c in charts(at) if "Logit lens" in c["layout"]["title"]["text"])
    assert lens["data"][0]["colorbar"]["title"]["text"] == "p(next)"
    assert any("perplexity" in c.value for c in at.caption)
