"""What the sidebar's model picker can offer: the shipped default, finished runs, GPT-2, uploads.

No streamlit here: pure functions of the file system, so they are unit-testable and the
loaders (explorer/loaders.py) and the picker (explorer/app.py) agree on what a key means.

Keys are small strings that travel in the URL (`?model=...`):
  "default"          the shipped model, assets/default/ (GLASSBOX_DEFAULT overrides the folder)
  "run:<name>"       a finished run under the runs root (runs/, GLASSBOX_RUNS overrides)
  "gpt2"             GPT-2 124M from a local Hugging Face folder (GLASSBOX_GPT2 or the HF cache)
  "upload:<sha12>"   a checkpoint uploaded in this server process (see explorer/loaders.py)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# A diverged run keeps its last good checkpoint, so it can be explored like a stopped one.
FINISHED = ("done", "stopped", "interrupted", "diverged")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")


@dataclass(frozen=True)
class ModelEntry:
    key: str
    label: str
    kind: str  # "default" | "run" | "gpt2" | "upload"
    path: str | None


def default_dir() -> Path:
    """The shipped model's run dir (GLASSBOX_DEFAULT overrides it, e.g. for a dev model)."""
    env = os.environ.get("GLASSBOX_DEFAULT")
    return Path(env) if env else REPO_ROOT / "assets" / "default"


def runs_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder holding training runs: `root`, else GLASSBOX_RUNS, else <repo>/runs."""
    if root is not None:
        return Path(root)
    env = os.environ.get("GLASSBOX_RUNS")
    return Path(env) if env else REPO_ROOT / "runs"


def hide_paths(text: str) -> str:
    """`text` (an error, a traceback) with the server's folders named, never located: the runs
    folder as "runs", the app's as "<app>", Python's as "<python>", the temp folder as "<tmp>",
    the home as "~" (a classroom sees these messages)."""
    import sys
    import tempfile

    folders = {str(runs_dir()): "runs", str(REPO_ROOT): "<app>", sys.prefix: "<python>",
               sys.base_prefix: "<python>", tempfile.gettempdir(): "<tmp>",
               os.path.expanduser("~"): "~"}  # fmt: skip
    for folder in sorted(folders, key=len, reverse=True):  # the most specific first
        if len(folder) > 1:  # never "/" itself
            text = text.replace(folder, folders[folder])
    return text


def gpt2_dir() -> Path | None:
    """A local folder with GPT-2's Hugging Face weights, if one is at hand (never downloads)."""
    candidates = []
    if os.environ.get("GLASSBOX_GPT2"):
        candidates.append(Path(os.environ["GLASSBOX_GPT2"]))
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    snapshots = hf_home / "hub" / "models--gpt2" / "snapshots"
    if snapshots.is_dir():
        candidates.extend(sorted(snapshots.iterdir(), reverse=True))
    for path in candidates:
        if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
            return path
    return None


def _has_checkpoint(run_dir: Path) -> bool:
    from core.runs import latest_checkpoint

    return latest_checkpoint(run_dir) is not None or (run_dir / "model.safetensors").is_file()


def list_runs(root: str | os.PathLike | None = None) -> list[ModelEntry]:
    """Finished runs (done / stopped / interrupted / diverged) with a complete checkpoint, newest first.

    core.runs reads the status (a 'running' run whose process is gone reads 'interrupted').
    """
    from core.runs import list_runs as _list_runs

    out = []
    for info in _list_runs(runs_dir(root)):
        name = info.path.name
        if info.status in FINISHED and info.latest_checkpoint is not None and _RUN_NAME.match(name):
            out.append(
                ModelEntry(
                    f"run:{name}",
                    f"run: {name} ({info.status}, step {info.step})",
                    "run",
                    str(info.path),
                )
            )
    return out


def list_models(runs_root: str | os.PathLike | None = None) -> list[ModelEntry]:
    """Everything the picker offers: default first, then finished runs, then GPT-2 if local.

    The default entry is always listed (its loader explains when assets/default is missing).
    Uploaded checkpoints are per-session and added by the app, not listed here.
    """
    entries = [ModelEntry("default", "shipped model (default)", "default", str(default_dir()))]
    entries += list_runs(runs_root)
    g = gpt2_dir()
    if g is not None:
        entries.append(ModelEntry("gpt2", "GPT-2 124M (local weights)", "gpt2", str(g)))
    return entries


def resolve(key: str, runs_root: str | os.PathLike | None = None) -> ModelEntry | None:
    """The entry for a key (e.g. from the URL), or None when it names nothing on disk.

    Upload keys are resolved by the loaders (they live in memory), not here.
    """
    if key == "default":
        return ModelEntry("default", "shipped model (default)", "default", str(default_dir()))
    if key == "gpt2":
        g = gpt2_dir()
        return ModelEntry("gpt2", "GPT-2 124M (local weights)", "gpt2", str(g)) if g else None
    if key.startswith("run:"):
        name = key[4:]
        if not _RUN_NAME.match(name):  # no path tricks through the URL
            return None
        run_dir = runs_dir(runs_root) / name
        if run_dir.is_dir() and _has_checkpoint(run_dir):
            return ModelEntry(key, f"run: {name}", "run", str(run_dir))
    return None
