"""The server settings a classroom depends on (.streamlit/config.toml), pinned.

Each one was measured or is a safety property; README's "A classroom server" explains them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml"


def test_classroom_settings():
    cfg = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    # a full gc.collect(2) after every rerun cost 0.1-0.3 s of GIL each (tests/load: p95 3.3 s)
    assert cfg["runner"]["postScriptGC"] is False
    assert cfg["runner"]["fastReruns"] is True
    assert cfg["server"]["fileWatcherType"] == "none"  # no source polling in a classroom
    assert cfg["server"]["runOnSave"] is False
    assert cfg["server"]["maxUploadSize"] == 50  # MB: the upload cap the README states
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["client"]["showErrorDetails"] == "none"  # no tracebacks or paths to students
    assert cfg["browser"]["gatherUsageStats"] is False  # nothing phones home
