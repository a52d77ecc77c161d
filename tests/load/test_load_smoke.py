"""Smoke test of the load harness: its clients against a real server, 2 sessions, no timings.

The measurement itself (`python -m tests.load.run --sessions 30`) is on demand only; this
checks that the harness still speaks to the app: a training starts from the Train page over the
websocket, two students walk part of the scenario, every widget they touch is found and no run
shows an exception or times out.
"""

import pytest

from tests.load import run

pytestmark = pytest.mark.slow


def test_two_sessions_walk_the_pages_while_a_training_runs():
    out = run.main(
        ["--sessions", "2", "--browsers", "0", "--interactions", "8", "--think", "0",
         "--ramp", "0", "--timeout", "300"]
    )  # fmt: skip
    assert out["error_samples"] == [] and out["errors"] == 0
    assert out["interactions"] == 16
    assert set(out["per_type"]) >= {"open:tokenize", "set:tok_text", "open:attention"}
    assert out["training"] and out["training_started_step"] > 0
    assert out["server_rss_peak_mb"] > 50  # the sampler read the server's /proc entries
