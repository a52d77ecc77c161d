"""AppTest: the Architecture page on the default model."""

import json


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_renders_diagram_numbers_math_and_variants(app, open_page):
    at = open_page(app, "architecture")
    specs = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    assert len(specs) == 3
    assert any("× L =" in json.dumps(s, ensure_ascii=False) for s in specs)
    assert metric(at, "parameters")
    assert len(at.latex) >= 6
    assert any("Pre-LN" in c.value for c in at.caption)


def test_config_sliders_move_the_numbers(app, open_page):
    at = open_page(app, "architecture")
    params, mem = metric(at, "parameters"), metric(at, "training memory")
    at.slider(key="arch_L").set_value(24).run()
    assert metric(at, "parameters") != params
    at.slider(key="arch_B").set_value(64).run()
    assert metric(at, "training memory") != mem
    assert at.query_params["arch_L"] == "24"


def test_invalid_combination_names_the_field(app, open_page):
    at = open_page(app, "architecture")
    at.select_slider(key="arch_C").set_value(32).run()
    at.select_slider(key="arch_H").set_value(3).run()
    assert not at.exception
    assert any("n_heads" in e.value for e in at.error)


def test_variant_choice_changes_the_math(app, open_page):
    at = open_page(app, "architecture")
    at.selectbox(key="arch_act").set_value("swiglu").run()
    assert any("SiLU" in x.value for x in at.latex)
    at.selectbox(key="arch_npos").set_value("post").run()
    assert any(r"\operatorname{N}_1(x + \text{attn}(x))" in x.value for x in at.latex)


def test_reset_returns_to_the_model(app, open_page):
    at = open_page(app, "architecture")
    first = metric(at, "parameters")
    at.slider(key="arch_L").set_value(30).run()
    at.button(key="arch_reset").click().run()
    assert metric(at, "parameters") == first
