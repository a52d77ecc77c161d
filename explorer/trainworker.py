"""One Train-page training, in its own process: `python -m explorer.trainworker RUN_DIR`.

Why a process and not a thread of the server: a training is a Python loop that holds the GIL for
a good part of every step, and a Streamlit server runs every session's rerun on that same GIL.
Measured with 30 simulated students, an in-server training thread took p95 latency from 1.2 s to
4.0 s, and `nice` on the thread could not help (the GIL, not the CPU, was the bottleneck). A child
process has its own interpreter, and the kernel's scheduler now decides: the worker runs as
SCHED_IDLE (`background()`), so reruns get the cores first and the training takes what is left.

The server side (explorer/trainjobs.py) starts this module and talks to it over two pipes:
- stdout, one JSON object per line: `{"t": "event", "d": <trainer event dict>}`,
  `{"t": "progress", "done", "total", "note"}`, then `{"t": "result", "d": ...}` or
  `{"t": "error", "error": "<one line>", "traceback": "..."}` as the last line;
- stdin: a line "stop" asks for a polite stop (the trainer checkpoints and ends); end of file
  means the server is gone, and the worker exits at once, as the thread it replaces died with its
  server: run.json keeps "running" with this process's pid, which is dead, so the run reads as
  interrupted and the Train page offers to resume it.
Anything else the libraries print goes to stderr (the server's log), never into the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import traceback
from pathlib import Path

from explorer.jobs import describe_error

EXIT_SERVER_GONE = 3


class Channel:
    """The worker's half of the pipes: protocol lines out, stop requests in."""

    def __init__(self, out) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self._stop_hooks: list = []

    def send(self, msg: dict) -> None:
        line = json.dumps(msg, allow_nan=False)
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):  # the server is gone; stdin's EOF ends us
                pass

    def emit(self, event) -> None:
        self.send({"t": "event", "d": event.to_dict()})

    def set_progress(self, done: float, total: float | None = None, note: str = "") -> None:
        self.send({"t": "progress", "done": done, "total": total, "note": note})

    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def on_stop(self, fn) -> None:
        self._stop_hooks.append(fn)
        if self.stop_event.is_set():
            fn()

    def listen(self, stream) -> None:
        """Read stdin until EOF (a daemon thread): "stop" stops, EOF exits the process now."""
        for line in stream:
            if line.strip() == "stop" and not self.stop_event.is_set():
                self.stop_event.set()
                for fn in list(self._stop_hooks):
                    with contextlib.suppress(Exception):
                        fn()
        os._exit(EXIT_SERVER_GONE)


def train(run_dir: Path, ch: Channel, *, resume: bool, threads: int) -> dict:
    """Build corpus, tokenizer and model from the spec in run.json and train; the final event."""
    import torch

    from core.config import ModelConfig
    from core.data import encode_corpus, split_train_val
    from core.model import GPT
    from core.runs import set_status
    from core.train_config import TrainConfig
    from core.trainer import Trainer
    from explorer.trainjobs import build_tokenizer, load_corpus_text
    from explorer.trainspec import TrainSpec

    torch.set_num_threads(max(1, threads))
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    spec = TrainSpec.from_dict(meta["spec"])
    ch.set_progress(0, None, "preparing the corpus")
    text = load_corpus_text(run_dir, spec)
    origin = meta.get("init_from") if spec.init_from else None
    base = None
    if origin and (not resume or not (run_dir / "tokenizer.json").exists()):
        # a fine-tune's first start: the weights and tokenizer of the run's copy of its base
        # (explorer/trainjobs.snapshot_base), checked against the hash taken when it was made;
        # a resume takes both from the run's own checkpoint
        from core.checkpoint import load_base
        from explorer.trainjobs import BASE_DIR

        ch.set_progress(0, None, "loading the base model")
        base, _ = load_base(run_dir / BASE_DIR, dropout=spec.model.get("dropout"),
                            expect_sha256=origin.get("sha256"))  # fmt: skip
        tok = base.tokenizer
    else:
        ch.set_progress(0, None, "training the tokenizer")
        tok = build_tokenizer(
            run_dir,
            spec,
            text,
            progress=lambda done, total: ch.set_progress(0, None, f"tokenizer {done}/{total}"),
        )
    if ch.stopped():
        set_status(run_dir, "stopped", final={"note": "stopped before training"})
        return {"status": "stopped"}
    ch.set_progress(0, None, "encoding the corpus")
    tc = TrainConfig.from_dict(spec.train)
    ids = encode_corpus(tok, text)
    train_ids, val_ids = split_train_val(ids, tc.val_fraction)
    # a fine-tune keeps its base's config, vocabulary included (it may be padded past the
    # tokenizer's); a new model's vocabulary is its tokenizer's
    cfg = ModelConfig.from_dict(
        spec.model if origin else {**spec.model, "vocab_size": tok.vocab_size}
    )
    torch.manual_seed(tc.seed)
    model = base.model if base is not None else GPT(cfg)
    trainer = Trainer(
        model,
        train_ids,
        val_ids,
        tc,
        tokenizer=tok,
        run_dir=run_dir,
        subscribers=[ch.emit],
        command=f"Train page: {run_dir.name}",
        init_from=origin,
    )
    ch.on_stop(trainer.stop)
    if resume:
        trainer.resume(run_dir)
    ch.set_progress(trainer.step, tc.max_steps, "training")
    return trainer.run().to_dict()


def mark_interrupted(run_dir: Path, error: str, *, failed: bool) -> None:
    """Record a crash in run.json while it still says queued/running (best effort: on a full
    disk this write fails too, and the page must see the first error, not this one)."""
    from core.runs import set_status

    meta_path = run_dir / "run.json"
    with contextlib.suppress(OSError, ValueError):
        status = json.loads(meta_path.read_text(encoding="utf-8")).get("status")
        if status in ("queued", "running", "interrupted"):
            set_status(run_dir, "interrupted", error=error, failed=failed)


def background(niceness: int) -> None:
    """Put this process (and the threads it will start) behind everything else on the machine.

    Linux's SCHED_IDLE runs it only on CPU time no other task wants, so a student's rerun never
    waits for a training step; where that policy is missing, `niceness` is added instead.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError, AttributeError):
            os.nice(niceness)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m explorer.trainworker", description=__doc__)
    ap.add_argument("run_dir", type=Path, help="a run dir written by explorer.trainjobs.start")
    ap.add_argument("--resume", action="store_true", help="continue from its last checkpoint")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument(
        "--nice", type=int, default=0, help="added niceness where SCHED_IDLE is not available"
    )
    args = ap.parse_args(argv)

    # the protocol gets a private copy of stdout; fd 1 itself now points at stderr, so a stray
    # print() from any library lands in the server's log instead of corrupting the protocol
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    background(args.nice)
    ch = Channel(out)
    threading.Thread(target=ch.listen, args=(sys.stdin,), daemon=True).start()
    try:
        result = train(args.run_dir, ch, resume=args.resume, threads=args.threads)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the page
        error = describe_error(exc)
        mark_interrupted(args.run_dir, error, failed=not isinstance(exc, KeyboardInterrupt))
        ch.send({"t": "error", "error": error, "traceback": traceback.format_exc()})
        return 1
    ch.send({"t": "result", "d": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
