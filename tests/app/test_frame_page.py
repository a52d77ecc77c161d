"""AppTest: the frame (sidebar picker, shared prompt, URL state)."""

from pathlib import Path


def test_sidebar_offers_the_default_model_and_shares_the_prompt(app, open_page):
    at = open_page(app, "sample", prompt="The dog")
    assert at.selectbox(key="model_key").value == "default"
    assert at.text_area(key="prompt").value == "The dog"
    assert any("parameters" in c.value for c in at.sidebar.caption)


def test_unknown_model_in_the_link_falls_back_with_a_notice(app, open_page):
    at = open_page(app, "tokenize", model="run:does-not-exist")
    assert at.selectbox(key="model_key").value == "default"
    assert any("not on this server" in w.value for w in at.sidebar.warning)


def test_prompt_goes_into_the_url(app, open_page):
    at = open_page(app, "sample")
    at.text_area(key="prompt").input("A brand new prompt").run()
    assert at.query_params["prompt"] == "A brand new prompt"


def test_missing_default_model_is_a_message(open_page, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    app_file = str(Path(__file__).resolve().parents[2] / "explorer" / "app.py")
    monkeypatch.setenv("GLASSBOX_DEFAULT", str(tmp_path / "absent"))
    for name in ("tokenize", "architecture", "sample"):
        at = open_page(AppTest.from_file(app_file, default_timeout=60), name)
        assert any("No model at" in e.value for e in at.error)


def test_pages_survive_a_tiny_char_model(app, open_page, monkeypatch):
    """A model with a 31-token character vocabulary and a 16-token context (e.g. an upload):
    default settings that exceed it (top-k 40, long prompts) must not break any page."""
    import torch

    from core.config import ModelConfig
    from core.model import GPT
    from core.tokenizer import CharTokenizer
    from explorer import loaders

    tok = CharTokenizer("abcdefghijklmnopqrstuvwxyz ,.")
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=tok.vocab_size, context_length=16, d_model=16, n_layers=1, n_heads=2
    )
    tiny = loaders.LoadedModel("tiny", GPT(cfg).eval(), tok, cfg, None, "tiny")
    at = open_page(app, "sample")  # first on the default model, with settings that will not fit
    at.slider(key="smp_topk").set_value(150).run()
    at = open_page(at, "architecture")
    monkeypatch.setattr(loaders, "get_model", lambda key: tiny)
    for name in ("tokenize", "architecture", "sample"):
        at = open_page(app, name)
        if name == "architecture":  # the new model's shape, not the old one's
            assert at.select_slider(key="arch_V").value == 31
    at.button(key="smp_go").click().run()
    at.button(key="smp_cmp_go").click().run()
    assert not at.exception
    assert any("cropped" in w.value for w in at.warning)  # the prompt is longer than 16 chars


def test_broken_gpt2_folder_is_a_message(app, open_page, monkeypatch, tmp_path):
    """GPT-2 is offered when a local Hugging Face folder is there; a broken one says so."""
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    monkeypatch.setenv("GLASSBOX_GPT2", str(folder))
    at = open_page(app, "sample", model="gpt2")
    assert "GPT-2 124M (local weights)" in at.selectbox(key="model_key").options
    assert any("could not be loaded" in e.value for e in at.error)
