"""`python -m core.train` end to end on a tiny model, and its option handling."""

import json

import pytest

from core.runs import load_run, sha256_file
from core.train import main


@pytest.mark.slow
def test_cli_trains_and_releases_a_run_dir(tmp_path):
    out = tmp_path / "run"
    argv = ["--corpus", "tinytales", "--corpus-bytes", "40000", "--preset", "tiny",
            "--vocab-size", "300", "--max-steps", "6", "--eval-every", "3", "--ckpt-every", "3",
            "--timelapse-frames", "3", "--warmup-steps", "2", "--threads", "1", "--quiet",
            "--release", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    info = load_run(out)
    assert info.status == "done" and info.step == 6
    assert info.extra["corpus"]["name"] == "tinytales"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"].startswith("python -m core.train --corpus tinytales")
    assert manifest["final"]["val_loss"] is not None
    assert set(manifest["head_scores"]) == {"previous_token", "first_token", "induction"}
    for rel, f in manifest["files"].items():
        assert sha256_file(out / rel) == f["sha256"]
    ckpts = [p.name for p in (out / "ckpt").iterdir()]
    assert sorted(ckpts) == ["LATEST", "step_000006"]  # release keeps only the final one
    assert not (out / "ckpt" / "step_000006" / "train_state.safetensors").exists()
    assert (out / "tokenizer.json").exists() and (out / "timelapse" / "index.json").exists()


def test_cli_rejects_unknown_options_by_name(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path), "--n-layerz", "2"])
    assert e.value.code == 2 and "--n-layerz" in capsys.readouterr().err


def test_cli_bad_value_names_the_field(capsys, tmp_path):
    assert main(["--out", str(tmp_path), "--dtype", "fp8"]) == 2
    assert "dtype" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [(["--corpus-bytes", "0"], "n_bytes must be positive"),
     (["--text", "/nonexistent/corpus.txt"], "does not exist"),
     (["--seq-len", "512", "--context-length", "64"], "exceeds the model's context_length"),
     (["--corpus-bytes", "3000", "--seq-len", "256", "--vocab-size", "300"], "need more than")],
)  # fmt: skip
def test_cli_bad_input_is_one_sentence_not_a_traceback(argv, message, capsys, tmp_path):
    assert main(["--out", str(tmp_path / "run"), "--max-steps", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_a_checkpoint(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from core.checkpoint import load_checkpoint

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "core.train", "--corpus-bytes", "40000", "--preset", "tiny",
           "--vocab-size", "300", "--max-steps", "100000", "--eval-every", "0", "--ckpt-every", "0",
           "--threads", "1", "--quiet", "--out", str(out)]  # fmt: skip
    p = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "log.jsonl").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    assert p.wait(60) == 0
    info = load_run(out)
    assert info.status == "stopped" and 0 < info.step < 100000
    assert load_checkpoint(out).meta["step"] == info.step
