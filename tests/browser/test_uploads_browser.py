"""Bad uploads through the real upload widgets in Chromium: a message each, nothing runs, and the
server goes on serving other pages. (Every bad-upload kind is checked directly, without a
browser, in tests/test_uploads.py; here three go through the widgets.)
Screenshots: tests/browser/screenshots/upload_bad_*.png.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import torch
from playwright.sync_api import expect


class Payload:
    """Unpickling this creates the marker file: code execution, made visible."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _checkpoint(tmp_path: Path) -> dict[str, bytes]:
    from core.checkpoint import save_checkpoint
    from core.config import ModelConfig
    from core.model import GPT
    from core.tokenizer import CharTokenizer

    tok = CharTokenizer("abcdefgh ij.")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, context_length=8, d_model=8, n_layers=1,
                      n_heads=2)  # fmt: skip
    path = save_checkpoint(tmp_path / "ck", GPT(cfg), tokenizer=tok)
    return {p.name: p.read_bytes() for p in path.iterdir()}


def _file(name: str, data: bytes, mime: str = "application/octet-stream") -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


def _alert(scope, text: str):
    expect(scope.locator("[data-testid='stAlert']").filter(has_text=text).first).to_be_visible(
        timeout=60_000
    )


def test_bad_checkpoints_and_corpus_get_messages_and_the_server_serves_on(
    page, open_app, wait_idle, shot, tmp_path, app_runs_dir
):
    files = _checkpoint(tmp_path)
    marker = tmp_path / "PWNED"
    open_app(page, "sample")
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("Load a checkpoint").click()
    uploader = sidebar.locator("[data-testid='stFileUploaderDropzoneInput']")

    # 1. a pickle with a payload posing as the weights, next to a real config.json
    evil = pickle.dumps({"model": Payload(marker)})
    uploader.set_input_files(
        files=[
            _file("config.json", files["config.json"], "application/json"),
            _file("model.safetensors", evil),
        ]
    )
    wait_idle(page)
    _alert(sidebar, "not a readable safetensors file")
    shot(page, "upload_bad_pickle", full=False)
    assert not marker.exists()

    # 2. a truncated checkpoint in a zip
    weights = files["model.safetensors"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in {**files, "model.safetensors": weights[: len(weights) // 2]}.items():
            zf.writestr(f"ckpt/{name}", data)
    uploader.set_input_files(files=[_file("half.zip", buf.getvalue(), "application/zip")])
    wait_idle(page)
    _alert(sidebar, "is corrupt")
    shot(page, "upload_bad_truncated", full=False)
    assert page.locator("[data-testid='stException']").count() == 0
    assert "model=upload" not in page.url  # the picker stayed on a model that loads

    # 3. a Latin-1 corpus on the Train page: refused when starting, nothing queued
    before = sorted(p.name for p in app_runs_dir.iterdir())
    open_app(page, "train", view="New run")
    page.get_by_text("Your own text file").click()
    wait_idle(page)
    main = page.locator("[data-testid='stMain']")
    main.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
        files=[_file("latin1.txt", "café crème\n".encode("latin-1") * 2000, "text/plain")]
    )
    wait_idle(page)
    page.get_by_role("button", name="Start training").click()
    wait_idle(page)
    _alert(main, "is not UTF-8 text (byte 0xE9 at line 1)")
    shot(page, "upload_bad_corpus", full=False)
    assert sorted(p.name for p in app_runs_dir.iterdir()) == before
    assert not marker.exists()

    # the server still serves other pages
    open_app(page, "architecture")
    assert page.locator("[data-testid='stException']").count() == 0
    expect(page.get_by_role("heading", name="Architecture").first).to_be_visible()
    open_app(page, "sample")
    assert page.locator("[data-testid='stException']").count() == 0
