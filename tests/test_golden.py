"""Golden test: the shipped model (assets/default) gives fixed greedy ids for a fixed prompt.

If this fails after retraining the shipped model on purpose, update GOLDEN_IDS (and the
README's samples); if it fails otherwise, something changed the model's arithmetic.
"""

import json
from pathlib import Path

import pytest

from core.checkpoint import load_checkpoint
from core.runs import sha256_file
from core.sampling import generate

ASSET = Path(__file__).resolve().parents[1] / "assets" / "default"
PROMPT = "Once upon a time"
GOLDEN_IDS = [
    44,
    412,
    279,
    258,
    2042,
    530,
    478,
    861,
    46,
    861,
    300,
    258,
    929,
    718,
    1649,
    46,
    868,
    619,
    536,
    279,
    258,
    610,
    257,
    442,
]
# ', there was a friendly girl named Kira. Kira had a squeaky white goldfish. Her favourite toy was a brown tra'


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(ASSET)


def test_fixed_prompt_gives_fixed_greedy_ids(shipped):
    ids = shipped.tokenizer.encode(PROMPT)
    gen = generate(shipped.model.eval(), ids, max_new_tokens=24, temperature=0)
    assert gen.new_ids == GOLDEN_IDS, shipped.tokenizer.decode(gen.new_ids)


def test_manifest_checksums_match_the_files():
    manifest = json.loads((ASSET / "manifest.json").read_text())
    for rel, f in manifest["files"].items():
        assert sha256_file(ASSET / rel) == f["sha256"], rel
    assert manifest["total_bytes"] < 30_000_000


def test_shipped_model_meets_the_brief(shipped):
    cfg = shipped.config
    assert cfg.n_layers >= 2 and cfg.n_heads >= 4
    assert cfg.vocab_size == shipped.tokenizer.vocab_size
    assert 2000 <= cfg.vocab_size <= 4096  # "a BPE ... vocab about 2k-4k"
    assert (ASSET / "ckpt" / "LATEST").exists() and (ASSET / "timelapse" / "index.json").exists()


def test_shipped_model_has_previous_token_and_induction_heads(shipped):
    """Recomputed here, not read from the manifest: a previous-token head and an induction head
    scoring >= 0.4 on repeated random tokens (core.heads), as recorded in the manifest."""
    import numpy as np
    import torch

    from core.heads import head_scores

    torch.set_num_threads(1)
    eot = shipped.tokenizer.eot_id
    scores = head_scores(shipped.model.eval(), batch=16, prefix_id=eot, seed=0)
    assert scores["previous_token"].max() >= 0.4 and scores["induction"].max() >= 0.4
    recorded = json.loads((ASSET / "manifest.json").read_text())["head_scores"]
    for k, v in scores.items():
        assert np.allclose(v, recorded[k], atol=2e-3), k
