"""AppTest: the Tokenize page on the default model, including bad input."""

import pytest


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def chips(at):
    return [m.value for m in at.markdown if "gbx-chip" in m.value]


def test_renders_chips_counts_and_comparison(app, open_page):
    at = open_page(app, "tokenize")
    assert int(metric(at, "tokens").replace(",", "")) > 0
    assert chips(at) and ">0</sub>" not in chips(at)[0][:0]
    assert at.get("plotly_chart")


def test_typing_changes_the_tokens(app, open_page):
    at = open_page(app, "tokenize")
    before = metric(at, "tokens")
    at.text_area(key="tok_text").input("The cat sat on the mat. " * 10).run()
    assert not at.exception
    assert metric(at, "tokens") != before
    assert metric(at, "characters") == "240"


def test_merge_slider_steps_back_to_bytes(app, open_page):
    at = open_page(app, "tokenize")
    at.select_slider(key="tok_merge").set_value(0).run()
    assert not at.exception
    assert any("Before any merge" in m.value for m in at.markdown)


def test_compare_and_window_sliders(app, open_page):
    at = open_page(app, "tokenize")
    at.multiselect(key="tok_cmp").set_value(["char"]).run()
    assert any("char (" in m.value for m in at.markdown)
    at.text_area(key="tok_text").input(
        "one two three four five six seven eight nine ten eleven"
    ).run()
    at.slider(key="tok_ctx").set_value(4).run()
    at.slider(key="tok_stride").set_value(1).run()
    assert not at.exception
    assert any("gbx-win" in m.value for m in at.markdown)
    at.slider(key="tok_ctx").set_value(32).run()
    at.text_area(key="tok_text").input("one two three").run()
    assert any("a window needs at least" in w.value for w in at.warning)


@pytest.mark.slow
def test_train_a_bpe_on_the_text(app, open_page):
    at = open_page(app, "tokenize")
    at.text_area(key="tok_text").input("low lower lowest newer newest wider " * 30).run()
    at.slider(key="tok_vocab").set_value(280).run()
    at.button(key="tok_train").click().run()
    assert not at.exception
    assert any("Your BPE" in s.value for s in at.success)


@pytest.mark.parametrize(
    "text, expect",
    [
        ("", "info"),
        ("x" * 100_001, "warning"),
        ("\x00\x01\x02\x03\x04\x05 binary? \x06\x07", "warning"),
        ("שלום עולם مرحبا", "info"),
        ("zero\u200bwidth\u200djoin", "info"),
        ("emoji 🙂👩‍👩‍👧 ok", None),
    ],
    ids=["empty", "100k", "binary", "rtl", "zero-width", "emoji"],
)
def test_bad_input_gets_a_message_not_a_traceback(app, open_page, text, expect):
    at = open_page(app, "tokenize")
    at.text_area(key="tok_text").input(text).run()
    assert not at.exception
    if expect:
        assert getattr(at, expect), f"expected an st.{expect}"


def test_html_payload_is_shown_literally(app, open_page):
    at = open_page(app, "tokenize")
    at.text_area(key="tok_text").input(
        '<img src=x onerror=alert(1)><iframe srcdoc="<script>alert(2)</script>">'
    ).run()
    html = "".join(chips(at))
    assert "<img" not in html and "<iframe" not in html and "<script" not in html
    assert "&lt;" in html


def test_use_the_shared_prompt_button(app, open_page):
    at = open_page(app, "tokenize")
    at.text_area(key="prompt").input("The shared one").run()
    at.text_area(key="tok_text").input("something else").run()
    at.button(key="tok_use_shared").click().run()
    assert at.text_area(key="tok_text").value == "The shared one"
