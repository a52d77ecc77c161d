"""The frame in a real browser: navigation, sidebar, URL state, and text shown literally."""

import json
import urllib.parse

from playwright.sync_api import expect

XSS = (
    '<img src=x onerror="window.__xss=1"> '
    '<iframe srcdoc="<script>parent.__xss=2</script>"></iframe> '
    "<script>window.__xss=3</script> $x^2$ :smile: **bold**"
)


def test_every_page_of_the_frame_opens(page, open_app, shot):
    open_app(page)
    nav = page.locator("[data-testid='stSidebarNav']")
    for title in ("Tokenize", "Architecture", "Sample"):
        assert nav.get_by_text(title, exact=True).count() == 1
    assert page.locator("[data-testid='stPageLink']").count() >= 3  # the start page
    shot(page, "start")
    for path, title in (("tokenize",) * 2, ("architecture",) * 2, ("sample",) * 2):
        open_app(page, path)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.locator("[data-testid='stDialog']").count() == 0  # no "page not found"
        assert page.locator("[data-testid='stMain'] h1").first.inner_text().strip().lower() == title
    shot(page, "frame_sample")


def test_sidebar_link_state_survives_a_reload(page, open_app, wait_idle):
    open_app(page, "sample", prompt="The cat", smp_temp="0.5")
    area = page.locator("[data-testid='stSidebar'] textarea")
    assert area.input_value() == "The cat"
    query = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    assert query.get("prompt") == ["The cat"] and query.get("smp_temp") == ["0.5"]


def test_html_and_script_in_the_prompt_show_literally_and_never_run(
    page, open_app, wait_idle, dialogs, shot
):
    for path in ("tokenize", "sample"):
        open_app(page, path, prompt=XSS, tok_text=XSS)
        if path == "sample":
            page.get_by_role("button", name="Generate").click()
            wait_idle(page)
        assert page.evaluate("() => window.__xss === undefined"), "an injected script ran"
        main = page.locator("[data-testid='stMain']")
        assert main.locator("img[src='x']").count() == 0
        assert main.locator("iframe[srcdoc]").count() == 0
        assert main.locator(".gbx script, .gbx strong, .gbx .katex").count() == 0
        shown = main.locator(".gbx").first.evaluate(
            "el => Array.from(el.querySelectorAll('.gbx-chip'))"
            ".map(c => c.firstChild.textContent).join('')"
        )
        assert shown.replace("␣", " ").startswith('<img src=x onerror="window.__xss=1">')
        assert not dialogs
        shot(page, f"xss_{path}")
    assert json.dumps(dialogs) == "[]"


def _checkpoint_zip(tmp_path):
    import io
    import zipfile

    import torch

    from core.checkpoint import save_checkpoint
    from core.config import ModelConfig
    from core.model import GPT
    from core.tokenizer import CharTokenizer

    tok = CharTokenizer("abcdefghijklmnopqrstuvwxyz ,.")
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=tok.vocab_size, context_length=16, d_model=16, n_layers=1, n_heads=2
    )
    ckpt = save_checkpoint(tmp_path / "ckpt", GPT(cfg), tokenizer=tok)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in ckpt.iterdir():
            zf.write(f, f"mine/{f.name}")
    return buf.getvalue()


def test_upload_a_checkpoint_or_get_a_message(page, open_app, wait_idle, tmp_path, shot):
    open_app(page, "sample")
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("Load a checkpoint").click()
    uploader = sidebar.locator("[data-testid='stFileUploaderDropzoneInput']")
    uploader.set_input_files(
        files=[{"name": "**$x$**_[a](b).zip", "mimeType": "application/zip", "buffer": b"nope"}]
    )
    wait_idle(page)
    expect(sidebar.locator("[data-testid='stAlert']").first).to_contain_text(
        "**$x$**_[a](b).zip is not a valid zip archive", timeout=60_000
    )  # shown as typed
    shot(page, "upload_refused", full=False)
    uploader.set_input_files(
        files=[
            {"name": "tiny.zip", "mimeType": "application/zip", "buffer": _checkpoint_zip(tmp_path)}
        ]
    )
    wait_idle(page)
    expect(sidebar.get_by_text("Loaded upload")).to_have_count(1, timeout=60_000)
    assert "model=upload%3A" in page.url
    assert page.locator("[data-testid='stException']").count() == 0
