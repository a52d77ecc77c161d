"""AppTest: the Sample page on the default model."""

import json

import pytest


def charts(at):
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def stage_chart(at):
    return next(c for c in charts(at) if c["layout"].get("barmode") == "group")


def caption_text(at):
    return "\n".join(c.value for c in at.caption)


def test_renders_every_stage_on_one_axis(app, open_page):
    at = open_page(app, "sample")
    fig = stage_chart(at)
    assert [t["name"] for t in fig["data"]] == [
        "raw softmax",
        "÷ temperature",
        "top-k",
        "top-p",
        "renormalised",
    ]
    assert len({json.dumps(t["x"]) for t in fig["data"]}) == 1


def test_top_k_slider_removes_tokens(app, open_page):
    at = open_page(app, "sample")
    at.slider(key="smp_topk").set_value(3).run()
    assert not at.exception
    assert "Top-k keeps 3 of" in caption_text(at)
    assert at.query_params["smp_topk"] == "3"


def test_log_scale_toggle(app, open_page):
    at = open_page(app, "sample")
    at.toggle(key="smp_log").set_value(True).run()
    assert stage_chart(at)["layout"]["yaxis"]["type"] == "log"


def test_temperature_changes_the_distribution(app, open_page):
    at = open_page(app, "sample")
    before = stage_chart(at)["data"][1]["y"]
    at.slider(key="smp_temp").set_value(0.3).run()
    after = stage_chart(at)["data"][1]["y"]
    assert before != after
    at.slider(key="smp_temp").set_value(0.0).run()
    assert not at.exception
    assert any("greedy" in c.value for c in at.caption)


def test_generate_streams_coloured_tokens_and_seed_lock_repeats(app, open_page):
    at = open_page(app, "sample")
    at.slider(key="smp_len").set_value(8).run()
    at.button(key="smp_go").click().run()
    assert not at.exception
    first = [m.value for m in at.markdown if "gbx-chip" in m.value]
    assert first and "data-tip" in first[-1]
    at.button(key="smp_go").click().run()
    second = [m.value for m in at.markdown if "gbx-chip" in m.value]
    assert first[-1] == second[-1]  # locked seed: the same text


def test_compare_configurations_side_by_side(app, open_page):
    at = open_page(app, "sample")
    at.radio(key="smp_ncmp").set_value(3).run()
    at.button(key="smp_cmp_go").click().run()
    assert not at.exception
    assert sum(c.value.startswith("T=") for c in at.caption) == 3


@pytest.mark.slow
def test_diversity_vs_temperature(app, open_page):
    at = open_page(app, "sample")
    at.slider(key="smp_div_n").set_value(2).run()
    at.slider(key="smp_div_len").set_value(8).run()
    at.button(key="smp_div_go").click().run()
    assert not at.exception
    assert any("distinct-1" in json.dumps(c) for c in charts(at))
    assert len(at.dataframe) == 1


def test_long_prompt_is_cropped_with_a_notice(app, open_page):
    app.session_state["prompt"] = "once upon a time " * 2000
    at = open_page(app, "sample")
    assert any("cropped" in w.value for w in at.warning)


def test_empty_prompt_gets_a_message(app, open_page):
    app.session_state["prompt"] = ""
    at = open_page(app, "sample")
    assert at.info, "expected a message about the empty prompt"


def test_bad_url_values_fall_back_to_defaults(app, open_page):
    at = open_page(app, "sample", smp_temp="banana", smp_topk="-4", smp_topp="7")
    assert at.slider(key="smp_temp").value == 1.0
    assert at.slider(key="smp_topk").value == 0
    assert at.slider(key="smp_topp").value == 1.0


def test_url_settings_are_applied(app, open_page):
    at = open_page(app, "sample", smp_temp="0.5", smp_topk="10")
    assert at.slider(key="smp_temp").value == 0.5
    assert "Top-k keeps 10 of" in caption_text(at)
