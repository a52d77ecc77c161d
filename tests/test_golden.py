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
    386,
    277,
    258,
    1256,
    812,
    481,
    722,
    46,
    722,
    639,
    403,
    563,
    470,
    781,
    637,
    640,
    46,
    1001,
    652,
    649,
    277,
    258,
    465,
]  # noqa: E501


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
    assert (ASSET / "ckpt" / "LATEST").exists() and (ASSET / "timelapse" / "index.json").exists()
