"""Smoke test of the load harness: its clients against a real server, 2 sessions, no timings.

The measurement itself (`python -m tests.load.run --sessions 30`) is on demand only; this
checks that the harness still speaks to the app: a training starts from the Train page over the
websocket, two students walk part of the scenario, every widget they touch is found and no run
shows an exception or times out.
"""

import threading

import pytest

from tests.load import run

pytestmark = pytest.mark.slow


def test_two_sessions_walk_the_pages_while_a_training_runs():
    # in its own thread: after the browser tests, Playwright's sync API leaves an asyncio loop
    # running in the main thread, and the harness calls asyncio.run()
    result = {}
    args = ["--sessions", "2", "--browsers", "0", "--interactions", "8", "--think", "0",
            "--ramp", "0", "--timeout", "300"]  # fmt: skip

    def work():
        try:
            result["out"] = run.main(args)
        except BaseException as exc:  # re-raised in the test's thread below
            result["exc"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=900)
    if "exc" in result:
        raise result["exc"]
    assert "out" in result, "the harness did not finish within 900 s"
    out = result["out"]
    assert out["error_samples"] == [] and out["errors"] == 0
    assert out["interactions"] == 16
    assert set(out["per_type"]) >= {"open:tokenize", "set:tok_text", "open:attention"}
    assert out["training"] and out["training_started_step"] > 0
    assert out["server_rss_peak_mb"] > 50  # the sampler read the server's /proc entries


class _Vocab:
    def __init__(self, n):
        self.vocab_size = n

    def token_label(self, i):
        return str(i)


def test_a_replaced_model_under_the_same_key_gets_its_own_cache_entries():
    """The first load run: assets/default was replaced while the server ran, and the Sample
    page got the old vocabulary's labels for the new model under the key "default"."""
    from explorer import loaders

    old, new = _Vocab(5), _Vocab(8)
    assert len(loaders.vocab_labels("default", old)) == 5
    assert len(loaders.vocab_labels("default", new)) == 8
    assert loaders.vocab_labels("default", old) == [str(i) for i in range(5)]
