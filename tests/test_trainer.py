"""Trainer: loss falls, events flow, clipping/telemetry/accumulation/checkpointing behave."""

import json
import threading

import pytest
import torch

from core.runs import git_commit
from core.train_state import param_groups
from core.trainer import Trainer
from tests.trainutil import losses, tiny_cfg, tiny_data, tiny_model


def _train(cfg, run_dir=None, model_kw=None, **kw):
    tok, tr, va = tiny_data()
    model = tiny_model(tok.vocab_size, **(model_kw or {}))
    events = []
    trainer = Trainer(
        model, tr, va, cfg, tokenizer=tok, run_dir=run_dir, subscribers=[events.append], **kw
    )
    final = trainer.run()
    return trainer, events, final


@pytest.mark.slow
def test_loss_falls_and_events_are_json():
    trainer, events, final = _train(tiny_cfg(max_steps=30, eval_every=10, lr=1e-2))
    ls = losses(events)
    assert len(ls) == 30 and final.kind == "done" and final.status == "done"
    assert sum(ls[-5:]) / 5 < ls[0] - 1.0  # from ~ln(300)=5.7 down a lot
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("eval") == 3 and kinds.count("sample") == 3
    for e in events:
        assert json.loads(e.to_json())["event"] == e.kind
    ev = [e for e in events if e.kind == "eval"][-1]
    assert ev.val_ppl == pytest.approx(torch.tensor(ev.val_loss).exp().item(), rel=1e-6)
    sample = [e for e in events if e.kind == "sample"][-1]
    assert sample.prompt == "Once upon a time" and isinstance(sample.text, str)


def test_decay_groups_exempt_norms_biases_embeddings():
    model = tiny_model(300)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "blocks.0.attn.qkv.weight" in decayed
    assert {
        "tok_emb.weight",
        "pos_emb.weight",
        "blocks.0.ln1.weight",
        "blocks.0.attn.qkv.bias",
    } <= exempt
    assert not any("ln" in n or n.endswith("bias") or "emb" in n for n in decayed)


def test_clipping_records_pre_clip_norm_and_telemetry():
    _, events, _ = _train(tiny_cfg(max_steps=4, grad_clip=1e-3, telemetry_every=2, eval_every=0))
    steps = [e for e in events if e.kind == "step"]
    assert all(s.clipped and s.grad_norm > 1e-3 for s in steps)
    tele = [s for s in steps if s.layer_grad_norms is not None]
    assert [s.step for s in tele] == [2, 4]
    assert len(tele[0].layer_grad_norms) == 2 and all(r > 0 for r in tele[0].update_ratios)
    _, events, _ = _train(tiny_cfg(max_steps=2, grad_clip=0.0, eval_every=0))
    assert not any(e.clipped for e in events if e.kind == "step")


def test_accumulation_matches_one_big_batch():
    base = dict(max_steps=3, batch_size=4, eval_every=0)
    _, a, _ = _train(tiny_cfg(**base))
    _, b, _ = _train(tiny_cfg(micro_batch_size=1, **base))
    assert losses(a) == pytest.approx(losses(b), rel=1e-5)


def test_activation_checkpointing_computes_the_same():
    base = dict(max_steps=3, eval_every=0)
    _, a, _ = _train(tiny_cfg(**base))
    _, b, _ = _train(tiny_cfg(activation_checkpointing=True, **base))
    assert losses(a) == pytest.approx(losses(b), rel=1e-5)


def test_bf16_autocast_trains():
    _, events, final = _train(tiny_cfg(max_steps=8, dtype="bf16", eval_every=8, lr=1e-2))
    ls = losses(events)
    assert all(torch.isfinite(torch.tensor(ls))) and ls[-1] < ls[0]


def test_stop_from_another_thread_checkpoints_and_reports_stopped(tmp_path):
    from core.checkpoint import load_checkpoint
    from core.runs import load_run

    tok, tr, va = tiny_data()
    trainer = Trainer(
        tiny_model(tok.vocab_size),
        tr,
        va,
        tiny_cfg(max_steps=10_000, eval_every=0),
        tokenizer=tok,
        run_dir=tmp_path / "run",
    )
    started = threading.Event()
    trainer.subscribe(lambda e: started.set() if e.kind == "step" and e.step >= 2 else None)
    t = threading.Thread(target=trainer.run)
    t.start()
    assert started.wait(60)
    trainer.stop()
    t.join(60)
    assert not t.is_alive()
    info = load_run(tmp_path / "run")
    assert info.status == "stopped" and info.step == trainer.step < 10_000
    meta = load_checkpoint(tmp_path / "run").meta
    assert meta["step"] == trainer.step and meta["seed"] == trainer.cfg.seed
    assert meta["commit"] == git_commit()  # this checkout's HEAD (None outside git)


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    from core.checkpoint import load_checkpoint
    from core.runs import load_run

    tok, tr, va = tiny_data()
    model = tiny_model(tok.vocab_size)
    trainer = Trainer(
        model,
        tr,
        va,
        tiny_cfg(max_steps=10, ckpt_every=2, eval_every=0),
        tokenizer=tok,
        run_dir=tmp_path / "run",
    )

    def poison(e):  # after step 3 a weight goes NaN: step 4's loss is NaN
        if e.kind == "step" and e.step == 3:
            with torch.no_grad():
                model.blocks[0].mlp.fc.weight[0, 0] = float("nan")

    trainer.subscribe(poison)
    final = trainer.run()
    assert final.kind == "diverged" and final.step == 4 and "loss" in final.reason
    assert final.last_checkpoint.endswith("step_000002")
    assert load_run(tmp_path / "run").status == "diverged"
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.meta["step"] == 2
    assert all(torch.isfinite(p).all() for p in ckpt.model.parameters())
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "diverged" and log[-1]["loss"] is None  # NaN written as null


def test_exploding_grad_norm_is_divergence():
    _, events, final = _train(tiny_cfg(max_steps=5, diverge_grad_norm=1e-9, eval_every=0))
    assert final.kind == "diverged" and final.step == 1 and "gradient norm" in final.reason


def test_repeat_fraction_makes_periodic_windows():
    tok, tr, va = tiny_data()
    cfg = tiny_cfg(repeat_fraction=1.0, batch_size=4)
    t = Trainer(tiny_model(tok.vocab_size), tr, va, cfg)
    starts, periods, rand = t._global_batch()
    assert rand is None
    assert ((periods >= 8) & (periods <= 16)).all()  # seq_len 32 -> spans of 8..16
    x, y = t._windows(t.train_ids, starts, periods)
    for row, p in zip(x, periods.tolist()):
        assert torch.equal(row[p:], row[: len(row) - p])  # the span repeats
    t = Trainer(
        tiny_model(tok.vocab_size), tr, va, tiny_cfg(repeat_fraction=1.0, repeat_random=1.0)
    )
    starts, periods, rand = t._global_batch()
    x, y = t._windows(t.train_ids, starts, periods, rand)
    for row, p, r in zip(x, periods.tolist(), rand):
        assert torch.equal(row[:p], r[:p]) and torch.equal(row[p:], row[: len(row) - p])
    plain = Trainer(tiny_model(tok.vocab_size), tr, va, tiny_cfg(batch_size=4))
    assert (plain._global_batch()[1] == 0).all() and plain._global_batch()[2] is None


def test_generation_between_steps_sees_the_new_weights():
    """Decoding caches weight copies until the parameters' version changes; the fused AdamW
    step changes them without bumping it, so a sample taken during training came from the
    weights of the first sample (found by review: step-20 samples from step-10 weights)."""
    from core.sampling import generate

    tok, tr, va = tiny_data()
    trainer = Trainer(tiny_model(tok.vocab_size), tr, va, tiny_cfg(lr=3e-2, eval_every=0))
    model, prompt = trainer.model, tok.encode("the ")
    for _ in range(3):
        model.eval()
        cached = generate(model, prompt, 12, temperature=0).ids
        assert cached == generate(model, prompt, 12, temperature=0, use_cache=False).ids
        model.train()
        for _ in range(3):
            trainer.train_step()


def test_a_memmapped_uint16_corpus_stays_uint16_and_trains_the_same(tmp_path):
    """The corpus was widened to int64 in memory (4x its uint16 file); now batches are."""
    import numpy as np

    from core.data import load_ids, save_ids

    tok, tr, va = tiny_data()
    save_ids(tr.astype(np.uint16), tmp_path / "train.bin")
    mapped = load_ids(tmp_path / "train.bin")
    cfg = tiny_cfg(max_steps=4, eval_every=2)
    a = Trainer(tiny_model(tok.vocab_size), mapped, va.astype(np.uint16), cfg)
    b = Trainer(tiny_model(tok.vocab_size), tr, va, cfg)
    assert a.train_ids.dtype == torch.uint16 and b.train_ids.dtype == torch.int64
    events_a, events_b = [], []
    a.subscribe(events_a.append)
    b.subscribe(events_b.append)
    a.run()
    b.run()
    assert losses(events_a) == losses(events_b)
