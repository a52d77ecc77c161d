"""Time-lapse: frames recorded during training load back as stacked, well-formed arrays."""

import json

import numpy as np
import pytest

from core.timelapse import load_timelapse, pca_2d, procrustes_align
from core.trainer import Trainer
from tests.trainutil import tiny_cfg, tiny_data, tiny_model


def test_frames_during_training_load_back(tmp_path):
    tok, tr, va = tiny_data()
    model = tiny_model(tok.vocab_size)
    cfg = tiny_cfg(max_steps=6, eval_every=0, ckpt_every=0, timelapse_steps=[0, 3, 6])
    events = []
    Trainer(model, tr, va, cfg, tokenizer=tok, run_dir=tmp_path, subscribers=[events.append]).run()
    tl = load_timelapse(tmp_path)
    S, L, H, T = 3, 2, 4, len(tl.probe_ids)
    assert tl.steps.tolist() == [0, 3, 6] and 8 < T <= 32
    assert tl.attention.shape == (S, L, H, T, T) and tl.attention.dtype == np.float16
    rows = tl.attention.astype(np.float32).sum(-1)
    assert np.allclose(rows, 1.0, atol=2e-3)  # every query row is a distribution
    assert np.all(np.triu(tl.attention.astype(np.float32), k=1) == 0)  # causal
    assert tl.head_scores.shape == (S, L, H, 3)
    assert ((tl.head_scores >= 0) & (tl.head_scores <= 1)).all()
    assert tl.score_names == ["previous_token", "first_token", "induction"]
    assert tl.token_loss.shape == (S, T) and np.isnan(tl.token_loss[:, 0]).all()
    assert np.isfinite(tl.token_loss[:, 1:]).all()
    assert tl.embedding.shape == (S, tok.vocab_size, 2)
    assert len(tl.samples) == S and len(tl.probe_labels) == T
    assert [e.frame for e in events if e.kind == "timelapse"] == [0, 1, 2]
    index = json.loads((tmp_path / "timelapse" / "index.json").read_text())
    assert [f["step"] for f in index["frames"]] == [0, 3, 6]


def test_procrustes_undoes_a_rotation_and_a_flip():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 2))
    a = np.pi / 3
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag([1, -1])
    assert np.allclose(procrustes_align(ref @ rot, ref), ref)


def test_pca_is_centered_and_ordered():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8)) * np.array([5, 2, 1, 1, 1, 1, 1, 1])
    p = pca_2d(x)
    assert np.allclose(p.mean(0), 0, atol=1e-9)
    assert p[:, 0].var() > p[:, 1].var()


def test_formed_at_and_missing_timelapse(tmp_path):
    from core.timelapse import Timelapse

    scores = np.zeros((3, 1, 2, 3), np.float32)
    scores[2, 0, 1, 2] = 0.5
    tl = Timelapse(
        np.array([0, 10, 20]),
        "",
        [],
        [],
        np.zeros(0),
        scores,
        ["previous_token", "first_token", "induction"],
        np.zeros(0),
        np.zeros(0),
        [],
        "",
    )
    assert tl.formed_at("induction") == 20 and tl.formed_at("previous_token") is None
    with pytest.raises(FileNotFoundError, match="time-lapse"):
        load_timelapse(tmp_path)


def test_a_fresh_run_in_an_old_folder_gets_its_own_probe(tmp_path):
    """A new run where an earlier one (longer context) left frames: the old probe was kept and
    was too long for the new model (ValueError at the first frame). Found by a review."""
    tok, tr, va = tiny_data()
    cfg = tiny_cfg(max_steps=2, eval_every=0, ckpt_every=0, timelapse_steps=[0, 2])
    Trainer(tiny_model(tok.vocab_size), tr, va, cfg, tokenizer=tok, run_dir=tmp_path).run()
    first = load_timelapse(tmp_path)
    assert len(first.probe_ids) > 16
    # a recorder for another probe drops the old frames, and the index on disk never names
    # a frame that is gone (readers got FileNotFoundError until the first new frame)
    from core.timelapse import TimelapseRecorder

    TimelapseRecorder(tmp_path / "timelapse", tiny_model(tok.vocab_size, context_length=16).config,
                      tok, tiny_cfg(seq_len=16))  # fmt: skip
    assert load_timelapse(tmp_path).steps.tolist() == []
    short = tiny_model(tok.vocab_size, context_length=16)
    cfg16 = tiny_cfg(max_steps=2, eval_every=0, ckpt_every=0, timelapse_steps=[0, 2], seq_len=16)
    Trainer(short, tr, va, cfg16, tokenizer=tok, run_dir=tmp_path).run()
    second = load_timelapse(tmp_path)
    assert second.steps.tolist() == [0, 2] and len(second.probe_ids) == 16
    assert second.probe_ids == first.probe_ids[:16]
    assert second.attention.shape[-1] == 16
    # and the run folder names the tokenizer this run used, not the earlier run's
    from core.tokenizer import CharTokenizer, load_tokenizer

    chars = CharTokenizer(tok.decode(list(tr[:2000])))
    ids = np.array(chars.encode(tok.decode(list(tr[:4000]))), dtype=np.int64)
    third = tiny_model(chars.vocab_size)
    Trainer(third, ids[:3000], ids[3000:], cfg, tokenizer=chars, run_dir=tmp_path).run()
    assert load_tokenizer(tmp_path / "tokenizer.json").content_hash == chars.content_hash
