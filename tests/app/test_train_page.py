"""AppTest for the Train page: controls, validation messages, and a tiny run started and finished.

AppTest runs no timers, so the live fragment does not poll here: the test waits on the job
registry and reruns the page itself. Runs go to a temp dir (GLASSBOX_RUNS); every background
thread is stopped at the end.
"""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import jobs

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "train.py")
TINY = {  # a run of a few seconds on one core
    "train_n_layers": 1,
    "train_n_heads": 2,
    "train_d_model": 16,
    "train_context_length": 16,
    "train_max_steps": 8,
    "train_micro_batch": 4,
    "train_eval_every": 4,
    "train_frames": 2,
    "train_corpus_kb": 20,
    "train_vocab_size": 300,
    "train_warmup_steps": 2,
}


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSBOX_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(jobs, "_REGISTRY", jobs.JobRegistry(max_concurrent=1))
    yield tmp_path / "runs"
    assert jobs.registry().stop_all(timeout=60), "a training thread outlived the test"


def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    return at


def errors(at) -> list[str]:
    """The error messages as a person reads them (the page escapes them as markdown literals)."""
    import re

    return [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]


def start_button(at):
    return at.button(key="train_start")


def test_new_run_view_renders_with_estimate(runs_root):
    at = page().run()
    assert not at.exception
    assert at.segmented_control(key="train_view").value == "New run"
    labels = [m.label for m in at.metric]
    assert labels == ["Parameters", "Memory", "Time (rough)"]
    assert not start_button(at).disabled


def test_preset_fills_the_sizes(runs_root):
    at = page().run()
    at.selectbox(key="train_preset").select("tiny").run()
    assert at.number_input(key="train_d_model").value == 32
    assert at.number_input(key="train_n_layers").value == 2
    assert not at.exception


def test_invalid_heads_shows_a_message_and_disables_start(runs_root):
    at = page().run()
    at.number_input(key="train_n_heads").set_value(3).run()  # 64 is not divisible by 3
    assert any("n_heads" in e for e in errors(at))
    assert start_button(at).disabled
    assert "Fix the fields" in " ".join(i.value for i in at.info)


def test_upload_corpus_needs_a_file(runs_root):
    at = page().run()
    at.radio(key="train_corpus").set_value("upload").run()
    assert any("upload a UTF-8 text file" in e for e in errors(at))
    assert start_button(at).disabled


def test_bad_run_name_is_refused(runs_root):
    at = page().run()
    at.text_input(key="train_label").input("my run/../x").run()
    assert any("run name" in e for e in errors(at))


def test_watch_and_runs_views_with_no_runs(runs_root):
    at = page().run()
    at.segmented_control(key="train_view").set_value("Watch").run()
    assert "No runs yet" in at.info[0].value
    at.segmented_control(key="train_view").set_value("Runs").run()
    assert "No runs yet" in at.info[0].value
    at.segmented_control(key="train_view").set_value("Time-lapse").run()
    assert not at.exception


@pytest.mark.slow
def test_tiny_run_starts_finishes_and_can_be_managed(runs_root):
    at = page().run()
    for key, value in TINY.items():
        at.session_state[key] = value
    at.text_input(key="train_label").input("apptest-run").run()
    assert not errors(at), errors(at)
    start_button(at).click().run()
    assert not at.exception
    assert at.query_params["run"] in ("apptest-run", ["apptest-run"])
    assert at.segmented_control(key="train_view").value == "Watch"
    job = jobs.registry().get("apptest-run")
    assert job is not None and job.wait(120), "the tiny run did not finish"
    assert job.state == jobs.DONE, job.error
    at.run()
    assert not at.exception
    assert any("Finished (done)" in s.value for s in at.success)
    assert len(at.get("plotly_chart")) >= 4

    # it is a model every page can pick now
    from explorer.registry import list_models

    assert "run:apptest-run" in [e.key for e in list_models()]
    at.button(key="train_explore_apptest-run").click().run()
    assert at.session_state["model_key"] == "run:apptest-run"

    # the time-lapse of the new run scrubs
    at.segmented_control(key="train_view").set_value("Time-lapse").run()
    assert not at.exception
    slider = at.select_slider(key="train_tl_step")
    assert slider.options[-1] == "8"
    slider.set_value(slider.options[0]).run()
    assert not at.exception

    # runs view: rename, then delete only after confirming
    at.segmented_control(key="train_view").set_value("Runs").run()
    at.text_input(key="train_rename_to").input("renamed").run()
    at.button(key="train_rename").click().run()
    assert (runs_root / "renamed" / "run.json").exists()
    assert at.button(key="train_delete").disabled
    at.checkbox(key="train_delete_sure").check().run()
    at.button(key="train_delete").click().run()
    assert not (runs_root / "renamed").exists()
    assert not at.exception


def fake_run(root: Path, name: str, status: str, log: list[dict], **meta) -> Path:
    import json
    import time

    d = root / name
    d.mkdir(parents=True)
    info = {"name": name, "status": status, "created": time.time(), "model": {"n_layers": 1}}
    info |= {"train": {"max_steps": 10, "grad_clip": 1.0}, **meta}
    (d / "run.json").write_text(json.dumps(info))
    (d / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    return d


def steps(n: int) -> list[dict]:
    return [
        {"event": "step", "step": i, "loss": 3.0, "lr": 1e-3, "grad_norm": 1.0, "clipped": False,
         "tokens": 64 * i, "tokens_per_s": 1e3, "elapsed": 0.1 * i}
        for i in range(1, n + 1)
    ]  # fmt: skip


def test_a_diverged_run_says_why(runs_root):
    reason = "loss is nan at step 4"
    log = steps(3) + [{"event": "diverged", "step": 4, "reason": reason, "loss": None}]
    fake_run(runs_root, "exploded", "diverged", log, final={"reason": reason})
    at = page()
    at.query_params["run"] = "exploded"
    at.run()
    assert at.segmented_control(key="train_view").value == "Watch"
    assert any(reason in e and "diverged" in e for e in errors(at)), errors(at)
    assert not at.exception


@pytest.mark.slow
def test_a_run_interrupted_by_a_restart_resumes_from_the_page(runs_root):
    import subprocess
    import sys

    from explorer.trainjobs import TrainSpec

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # a pid that is gone: the server that wrote run.json died
    spec = TrainSpec(
        label="restarted",
        model={"n_layers": 1, "n_heads": 2, "d_model": 16, "context_length": 16},
        train={"max_steps": 6, "batch_size": 4, "eval_every": 3, "device": "cpu"},
        corpus_bytes=20_000,
        vocab_size=300,
    )
    fake_run(runs_root, "restarted", "running", steps(2), pid=p.pid, spec=spec.to_dict())
    at = page()
    at.query_params["run"] = "restarted"
    at.run()
    assert any("interrupted at step 2" in w.value for w in at.warning)
    at.button(key="train_resume").click().run()
    job = jobs.registry().get("restarted")
    assert job is not None and job.wait(120) and job.state == jobs.DONE, job and job.error
    at.run()
    assert any("Finished (done) at step 6" in s.value for s in at.success)


def test_uploaded_corpus_enables_start_and_a_binary_file_gets_a_message(runs_root):
    at = page().run()
    at.radio(key="train_corpus").set_value("upload").run()
    at.file_uploader(key="train_upload").upload("bad.txt", b"\x00\x01binary" * 100).run()
    assert not errors(at)  # size is fine; the content is checked when starting
    start_button(at).click().run()
    assert any("binary" in e for e in errors(at)), errors(at)
    assert not any(runs_root.iterdir()) if runs_root.exists() else True
    assert jobs.registry().jobs() == []
    assert not at.exception


def test_a_second_run_waits_in_a_visible_queue(runs_root):
    import threading

    gate = threading.Event()
    jobs.registry().submit("someone-elses-run", lambda ctx: gate.wait(60))
    at = page().run()
    assert at.segmented_control(key="train_view").value == "Watch"  # a job is active
    assert any("training: someone-elses-run" in c.value for c in at.caption)
    at.segmented_control(key="train_view").set_value("New run").run()
    for key, value in TINY.items():
        at.session_state[key] = value
    at.run()
    assert any("will wait in the queue" in w.value for w in at.warning)
    at.text_input(key="train_label").input("second").run()
    start_button(at).click().run()
    assert any("number 1 in the queue" in i.value for i in at.info), [i.value for i in at.info]
    assert any("waiting: 1. second" in c.value for c in at.caption)
    at.button(key="train_stop").click().run()  # cancel while queued: its dir goes
    assert not (runs_root / "second").exists()
    gate.set()


def test_the_form_keeps_its_values_across_views(runs_root):
    at = page().run()
    at.number_input(key="train_n_layers").set_value(3).run()
    at.selectbox(key="train_activation").select("swiglu").run()
    at.segmented_control(key="train_view").set_value("Runs").run()
    at.segmented_control(key="train_view").set_value("New run").run()
    assert at.number_input(key="train_n_layers").value == 3
    assert at.selectbox(key="train_activation").value == "swiglu"


def test_time_lapse_of_the_shipped_model_moves_every_view_with_one_slider(runs_root):
    from explorer.registry import default_dir

    if not (default_dir() / "timelapse" / "index.json").exists():
        pytest.skip("the shipped model has no time-lapse in this checkout")
    at = page()
    at.query_params["view"] = "Time-lapse"
    at.run()
    assert at.selectbox(key="train_tl_source").value.startswith("shipped model")
    slider = at.select_slider(key="train_tl_step")
    first = slider.options[0]
    slider.set_value(first).run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # loss + cursor, head roles over steps, attention, map, heads at step
    titles = " ".join(c.proto.spec for c in charts)
    assert f"at step {first}" in titles
    html = [h.proto.body for h in at.get("html")]
    assert html and 'title="loss' in html[0]


def test_start_from_switches_the_form_to_a_fine_tune_and_back(runs_root):
    at = page().run()
    base = at.selectbox(key="train_init_from")
    assert base.options[:2] == [
        "A new model with random weights (pre-train)",
        "Fine-tune the shipped model",
    ]
    base.select("default").run()
    assert not at.exception and not errors(at), errors(at)
    kept = [i.value for i in at.info if i.value.startswith("Kept from the base model")]
    assert kept and "L=4 H=4 C=128" in kept[0] and "vocabulary 2048" in kept[0]
    keys = {n.key for n in at.number_input}
    assert "train_n_layers" not in keys and "train_vocab_size" not in keys
    assert "train_ft_seq" in keys and not [s for s in at.selectbox if s.key == "train_preset"]
    assert at.number_input(key="train_lr").value == pytest.approx(3e-4)  # a fine-tune's default
    assert [m.value for m in at.metric][0] == "1.09 M"  # the base model's parameters
    at.number_input(key="train_max_steps").set_value(50).run()  # the user's own value stays
    at.selectbox(key="train_init_from").select("").run()
    assert at.number_input(key="train_lr").value == pytest.approx(3e-3)
    assert at.number_input(key="train_max_steps").value == 50
    assert "train_n_layers" in {n.key for n in at.number_input}


def test_a_deleted_base_falls_back_to_a_new_model(runs_root):
    import shutil

    from core.trainer import Trainer
    from tests.trainutil import tiny_cfg, tiny_data, tiny_model

    tok, train_ids, val_ids = tiny_data()
    Trainer(tiny_model(tok.vocab_size), train_ids, val_ids, tiny_cfg(max_steps=3, ckpt_every=3),
            tokenizer=tok, run_dir=runs_root / "soon-gone").run()  # fmt: skip
    at = page().run()
    at.selectbox(key="train_init_from").select("run:soon-gone").run()
    assert not errors(at), errors(at)
    assert any("L=2 H=4 C=32, context 32" in i.value for i in at.info)  # the tiny shape
    shutil.rmtree(runs_root / "soon-gone")  # deleted from another tab
    at.run()
    assert not at.exception and not errors(at), errors(at)
    assert at.selectbox(key="train_init_from").value == ""
    assert "train_n_layers" in {n.key for n in at.number_input}


@pytest.mark.slow
def test_a_fine_tune_from_the_page_says_where_it_started(runs_root):
    at = page().run()
    at.selectbox(key="train_init_from").select("default").run()
    for key, value in {
        "train_max_steps": 4,
        "train_micro_batch": 4,
        "train_eval_every": 2,
        "train_frames": 0,
        "train_corpus_kb": 20,
        "train_ft_seq": 32,
    }.items():
        at.session_state[key] = value  # fmt: skip
    at.text_input(key="train_label").input("ft-page").run()
    at.text_input(key="train_sample_prompt").input("The captain").run()
    assert not errors(at), errors(at)
    start_button(at).click().run()
    job = jobs.registry().get("ft-page")
    assert job is not None and job.wait(120) and job.state == jobs.DONE, job.error
    samples = [e for e in job.events() if e.kind == "sample"]
    assert [e.step for e in samples] == [0, 2, 4] and {e.prompt for e in samples} == {"The captain"}
    at.run()
    assert not at.exception
    assert any("Fine-tuned from the shipped model, step 6000" in c.value for c in at.caption)
    at.segmented_control(key="train_view").set_value("Runs").run()
    table = at.dataframe[0].value
    assert list(table.loc[table["name"] == "ft-page", "from"]) == ["the shipped model, step 6000"]
