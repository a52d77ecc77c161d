"""The frame's pure parts: model registry, upload unpacking, text checks, HTML escaping,
navigation spec and the small compute helpers."""

import io
import json
import os
import socket
import time
import zipfile

import pytest

from explorer import compute, registry, widgets


def make_run(root, name, status="done", ckpt=True):
    d = root / name
    d.mkdir(parents=True)
    alive = {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time()}
    (d / "run.json").write_text(json.dumps({"status": status, **alive}))
    if ckpt:
        (d / "ckpt").mkdir()
        (d / "ckpt" / "step_000001").mkdir()
        (d / "ckpt" / "LATEST").write_text("step_000001")
    return d


def test_list_models_default_first_then_finished_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSBOX_GPT2", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    make_run(tmp_path, "a-done")
    make_run(tmp_path, "b-running", status="running")
    make_run(tmp_path, "c-nockpt", ckpt=False)
    make_run(tmp_path, "d-stopped", status="stopped")
    make_run(tmp_path, "f-diverged", status="diverged")
    (tmp_path / "e-broken").mkdir()
    (tmp_path / "e-broken" / "run.json").write_text("{not json")
    entries = registry.list_models(tmp_path)
    assert entries[0].key == "default" and entries[0].kind == "default"
    assert sorted(e.key for e in entries[1:]) == ["run:a-done", "run:d-stopped", "run:f-diverged"]
    assert all(e.kind == "run" for e in entries[1:])


def test_gpt2_listed_only_when_local_weights_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    g = tmp_path / "gpt2"
    monkeypatch.setenv("GLASSBOX_GPT2", str(g))
    assert registry.gpt2_dir() is None
    g.mkdir()
    (g / "config.json").write_text("{}")
    (g / "model.safetensors").write_bytes(b"x")
    assert registry.gpt2_dir() == g
    assert registry.list_models(tmp_path)[-1].key == "gpt2"


def test_resolve_rejects_path_tricks(tmp_path):
    make_run(tmp_path, "ok")
    assert registry.resolve("run:ok", tmp_path).path == str(tmp_path / "ok")
    assert registry.resolve("run:../etc", tmp_path) is None
    assert registry.resolve("run:", tmp_path) is None
    assert registry.resolve("nonsense", tmp_path) is None
    assert registry.resolve("default").kind == "default"


def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_unpack_upload_accepts_zip_and_ignores_paths(tmp_path):
    data = zip_of(
        {"ckpt/config.json": b"{}", "ckpt/model.safetensors": b"w", "../../evil.py": b"x"}
    )
    out = compute.unpack_upload([("my.zip", data)], tmp_path, 10_000)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert out.parent == tmp_path


@pytest.mark.parametrize(
    "files, message",
    [
        ([("notes.txt", b"hello")], "not part of a checkpoint"),
        ([("x.zip", b"not a zip")], "not a valid zip"),
        ([("config.json", b"{}")], "model.safetensors"),
        (
            [("big.zip", zip_of({"config.json": b"{}", "model.safetensors": b"0" * 5000}))],
            "unpacks to more",
        ),
    ],
)
def test_unpack_upload_refuses_with_a_message(tmp_path, files, message):
    with pytest.raises(ValueError, match=message):
        compute.unpack_upload(files, tmp_path, 1000)


def test_esc_neutralises_html_and_markdown():
    payload = "<img src=x onerror=alert(1)> $x$ :smile: [a](b) **b** `c`\n"
    out = widgets.esc(payload)
    for bad in ("<", ">", "$", ":", "[", "*", "`", "\n"):
        assert bad not in out
    assert "&lt;img" in out


def test_chips_escape_model_and_user_text():
    rec = dict(id=7, label='<iframe srcdoc="<script>alert(1)</script>">', hex="3c", n_bytes=1)
    html = widgets.chips_html([rec])
    assert "<iframe" not in html and "<script" not in html
    assert "&lt;iframe" in html and ">7</sub>" in html
    assert "\n" not in html


def test_inspect_text_flags_bad_input():
    text, notes = widgets.inspect_text("a" * 50, 10)
    assert text == "a" * 10 and notes[0][0] == "warning"
    text, notes = widgets.inspect_text("\x00\x01\x02\x03abc", 100)
    assert "\x00" not in text and any("binary" in m for _, m in notes)
    _, notes = widgets.inspect_text("שלום עולם", 100)
    assert any("Right-to-left" in m for _, m in notes)
    _, notes = widgets.inspect_text("a\u200bb", 100)
    assert any("invisible" in m for _, m in notes)
    assert widgets.inspect_text("🙂 plain", 100)[1] == []


def test_crop_prompt_keeps_the_end():
    assert compute.crop_prompt([1, 2, 3, 4], 2) == ([3, 4], 2)
    assert compute.crop_prompt([1, 2], 5) == ([1, 2], 0)


def test_diversity_with_a_prompt_that_fills_the_context():
    """Prompt + new tokens went through the model in one pass, past its context: ValueError on
    every rerun of the Sample page (found by a review). Scored within the last window now."""
    import torch

    from core.config import preset
    from core.model import GPT

    torch.manual_seed(0)
    model = GPT(preset("tiny", context_length=32)).eval()
    short = compute.mean_logprob(model, [1, 2, 3], [4, 5])
    with torch.no_grad():
        full = torch.log_softmax(model(torch.tensor([[1, 2, 3, 4]]))[0][0].double(), -1)
    assert short == pytest.approx(float((full[2, 4] + full[3, 5]) / 2))
    rows = compute.diversity(model, list(range(32)), (1.0,), 2, 24, None, None, 0)
    assert len(rows) == 1 and rows[0]["mean_logprob"] < 0  # finite, a log-probability
    assert compute.mean_logprob(model, list(range(40)), [7] * 40) < 0  # more new than context


def test_hide_paths_names_server_folders_without_locating_them(tmp_path, monkeypatch):
    import os
    import tempfile

    monkeypatch.setenv("GLASSBOX_RUNS", str(tmp_path / "classroom-runs"))
    tb = (f'File "{registry.REPO_ROOT}/core/trainer.py", line 3\n'
          f"OSError: {tmp_path}/classroom-runs/r1/ckpt is full; "
          f"{tempfile.gettempdir()}/x and {os.path.expanduser('~')}/.cache")  # fmt: skip
    shown = registry.hide_paths(tb)
    assert 'File "<app>/core/trainer.py"' in shown and "runs/r1/ckpt is full" in shown
    assert "<tmp>/x" in shown and "~/.cache" in shown
    assert str(tmp_path) not in shown and str(registry.REPO_ROOT) not in shown


def test_distinct_n():
    assert compute.distinct_n([[1, 2, 3], [1, 2, 3]], 1) == 0.5
    assert compute.distinct_n([[1, 2], [3, 4]], 2) == 1.0
    assert compute.distinct_n([[1]], 2) == 0.0


def test_navigation_skips_pages_whose_file_is_missing(tmp_path):
    from explorer.app import navigation_spec

    (tmp_path / "a.py").write_text("")
    (tmp_path / "c.py").write_text("")
    pages = [
        ("Generate", "c.py", "C", None, "c"),
        ("Data", "a.py", "A", None, "a"),
        ("Train", "missing.py", "B", None, "b"),
    ]
    spec = navigation_spec(pages, tmp_path)
    assert list(spec) == ["Data", "Generate"]


def test_md_literal_escapes_markdown_and_latex():
    out = widgets.md_literal("$x$ **b** <b>hi</b> [a](b) :smile:")
    for ch in "$*<>[]():":
        assert f"\\{ch}" in out
    assert widgets.md_literal("plain words") == "plain words"
