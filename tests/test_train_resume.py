"""Exact resume: an interrupted run continues on the same loss curve as one never interrupted."""

from core.events import read_log
from core.trainer import Trainer
from tests.trainutil import tiny_cfg, tiny_data, tiny_model


def _step_losses(run_dir):
    return [(e["step"], e["loss"]) for e in read_log(run_dir / "log.jsonl") if e["event"] == "step"]


def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path):
    tok, tr, va = tiny_data()
    # dropout > 0 so the RNG state matters; eval + samples in between must not disturb it
    cfg = tiny_cfg(max_steps=8, ckpt_every=3, eval_every=2, timelapse_steps=[0, 4, 8])
    kw = dict(dropout=0.1)

    full = Trainer(
        tiny_model(tok.vocab_size, **kw), tr, va, cfg, tokenizer=tok, run_dir=tmp_path / "a"
    )
    full.run()

    first = Trainer(
        tiny_model(tok.vocab_size, **kw), tr, va, cfg, tokenizer=tok, run_dir=tmp_path / "b"
    )
    first.subscribe(lambda e: first.stop() if e.kind == "step" and e.step == 5 else None)
    assert first.run().status == "stopped"
    # pretend the process died after step 5 was logged but only step 3 was checkpointed
    (tmp_path / "b" / "ckpt" / "LATEST").write_text("step_000003\n")
    # a fresh process: different init seed, everything must come from the checkpoint
    second = Trainer(
        tiny_model(tok.vocab_size, seed=99, **kw),
        tr,
        va,
        cfg,
        tokenizer=tok,
        run_dir=tmp_path / "b",
    )
    second.resume(tmp_path / "b")
    assert second.step == 3
    assert second.run().status == "done"

    a, b = _step_losses(tmp_path / "a"), _step_losses(tmp_path / "b")
    assert [s for s, _ in b] == list(range(1, 9))  # the log holds one curve, no duplicates
    assert [loss for _, loss in a] == [loss for _, loss in b]  # exact
    evals = lambda d: [e["val_loss"] for e in read_log(d / "log.jsonl") if e["event"] == "eval"]  # noqa: E731
    assert evals(tmp_path / "a") == evals(tmp_path / "b")
    from core.timelapse import load_timelapse

    assert load_timelapse(tmp_path / "b").steps.tolist() == [0, 4, 8]


# kill -9 at random moments (12 times, through the CLI and --resume): tests/test_faults_kill.py


def test_resume_takes_optimizer_settings_from_the_new_config(tmp_path):
    """Moments and step come from the checkpoint; weight decay, betas and eps from the config
    of the run that resumes (run.json records that one)."""
    tok, tr, va = tiny_data()
    run = tmp_path / "r"
    old = tiny_cfg(max_steps=2, ckpt_every=2, eval_every=0, weight_decay=0.1, beta2=0.95)
    Trainer(tiny_model(tok.vocab_size), tr, va, old, tokenizer=tok, run_dir=run).run()
    new = tiny_cfg(max_steps=4, ckpt_every=2, eval_every=0, weight_decay=0.0, beta2=0.99, eps=1e-6)
    again = Trainer(tiny_model(tok.vocab_size), tr, va, new, tokenizer=tok, run_dir=run)
    again.resume(run)
    assert again.step == 2 and again.optimizer.state  # the moments did come back
    for group in again.optimizer.param_groups:
        assert group["weight_decay"] == 0.0 and group["betas"] == (0.9, 0.99)
        assert group["eps"] == 1e-6
