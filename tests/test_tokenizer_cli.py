"""`python -m core.tokenizer train|encode|trace`: works end to end, fails with one clear line."""

import ast
import json
import subprocess
import sys

import pytest

from core.tokenizer import load_tokenizer
from core.tokenizer.__main__ import main


def test_help_via_python_m():
    out = subprocess.run(
        [sys.executable, "-m", "core.tokenizer", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    for word in ("train", "encode", "trace"):
        assert word in out.stdout


def test_train_encode_trace(tmp_path, capsys):
    out = tmp_path / "tok.json"
    assert (
        main(["train", "--bytes", "30000", "--vocab-size", "300", "--out", str(out), "--quiet"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["vocab_size"] == 300 and out.exists()
    tok = load_tokenizer(out)
    assert summary["hash"] == tok.content_hash

    assert main(["encode", "--tokenizer", str(out), "Once upon a time"]) == 0
    ids = json.loads(capsys.readouterr().out)
    assert ids == tok.encode("Once upon a time")

    assert main(["encode", "--tokenizer", str(out), "--labels", "Once"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [int(line.split("\t")[0]) for line in lines] == tok.encode("Once")
    assert "".join(ast.literal_eval(line.split("\t")[1]) for line in lines) == "Once"

    assert main(["trace", "--tokenizer", str(out), "--json", " upon"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records[0]["ids"] == tok.encode(" upon")
    assert main(["trace", "--tokenizer", str(out), " upon"]) == 0
    assert "merge" in capsys.readouterr().out


def test_train_on_user_file(tmp_path, capsys):
    src = tmp_path / "mine.txt"
    src.write_text("the cat sat on the mat. " * 200, encoding="utf-8")
    out = tmp_path / "t.json"
    assert (
        main(["train", "--input", str(src), "--vocab-size", "280", "--out", str(out), "--quiet"])
        == 0
    )
    assert load_tokenizer(out).encode("the cat") == load_tokenizer(out).encode("the cat")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["encode", "--tokenizer", "nope.json", "x"], "neither a tokenizer file"),
        (["encode", "--tokenizer", "cl100k_base", "x"], "not available offline"),
        (["train", "--vocab-size", "10", "--bytes", "5000", "--quiet"], "too small"),
        (["train", "--corpus", "klingon", "--quiet"], "unknown corpus"),
        (["encode", "--tokenizer", "gpt2"], ""),
    ],
)
def test_errors_are_one_line(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err
