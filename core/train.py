"""`python -m core.train`: train a GPT from the command line (also under torchrun).

    python -m core.train --corpus tinytales --preset small --max-steps 2000 --out runs/NAME
    torchrun --standalone --nproc_per_node=2 -m core.train --corpus tinytales ... --out runs/NAME

Every ModelConfig field (`--n-layers 2`) and TrainConfig field (`--lr 3e-3`) is an option;
an unknown option fails with its name. The tokenizer is a byte-level BPE trained on the corpus
(`--vocab-size`) unless `--tokenizer FILE` is given or the run dir already has one. Progress
(loss, tokens/s) goes to stderr; everything else goes to the run dir (core.runs).
`--resume` continues from the run dir's LATEST checkpoint; `--release` turns the finished run
into a shippable asset (final checkpoint only, no optimizer state, manifest.json).
`--init-from CKPT` fine-tunes: training starts from that checkpoint's weights, with its
architecture and tokenizer (only `--dropout` may change), on the corpus or `--text` given:

    python -m core.train --init-from assets/default --text my_stories.txt --lr 3e-4 \
        --max-steps 300 --warmup-steps 20 --out runs/my-finetune
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
import types
import typing
from pathlib import Path

from core.config import PRESETS, ModelConfig, preset
from core.train_config import TrainConfig

CLI_ONLY = {"corpus", "corpus_bytes", "corpus_seed", "text", "tokenizer", "vocab_size"}
CLI_ONLY |= {"bpe_bytes", "preset", "out", "resume", "release", "threads", "quiet", "init_from"}


def _parse_bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def _converter(tp):
    """argparse `type` for a dataclass field annotation (int | None accepts 'none')."""
    if isinstance(tp, str):
        tp = eval(tp, {"list": list, "int": int, "float": float, "str": str, "bool": bool})
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        conv = _converter(inner)
        return lambda s: None if s.strip().lower() == "none" else conv(s)
    if origin is list:
        return lambda s: [int(x) for x in s.split(",") if x.strip()]
    if tp is bool:
        return _parse_bool
    return tp


def _flags(name: str) -> list[str]:
    dashed = "--" + name.replace("_", "-")
    return [dashed] if "_" not in name else [dashed, "--" + name]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.train",
        description="Train a GPT (see core/train.py).",
        usage="python -m core.train --out DIR [--corpus NAME] [--preset NAME] [--FIELD VALUE ...]",
        allow_abbrev=False,  # so a typo fails by name instead of matching a longer option
    )
    p.add_argument("--corpus", default="tinytales", help="built-in corpus: tinytales | pyprose")
    p.add_argument("--corpus-bytes", type=int, default=None, help="corpus size in bytes")
    p.add_argument("--corpus-seed", type=int, default=0)
    p.add_argument("--text", default=None, help="train on this text file instead of --corpus")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json to use (else train a BPE)")
    p.add_argument("--vocab-size", type=int, default=None, help="BPE vocab (default: preset's)")
    p.add_argument("--bpe-bytes", type=int, default=2_000_000, help="corpus prefix for BPE")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS), help="default: small")
    p.add_argument(
        "--init-from",
        default=None,
        metavar="CKPT",
        help="fine-tune: start from this checkpoint or run dir (its model, tokenizer)",
    )
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT's LATEST checkpoint")
    p.add_argument("--release", action="store_true", help="strip to a shippable asset at the end")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    model_group = p.add_argument_group("model (ModelConfig fields)")
    hints = typing.get_type_hints(ModelConfig)
    for f in dataclasses.fields(ModelConfig):
        if f.name in CLI_ONLY:
            continue
        model_group.add_argument(
            *_flags(f.name), dest="m_" + f.name, type=_converter(hints[f.name]), metavar="V"
        )
    train_group = p.add_argument_group("training (TrainConfig fields)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        train_group.add_argument(
            *_flags(f.name), dest="t_" + f.name, type=_converter(hints[f.name]), metavar="V"
        )
    return p


def configs_from_args(args) -> tuple[ModelConfig, TrainConfig]:
    m = {k[2:]: v for k, v in vars(args).items() if k.startswith("m_") and v is not None}
    t = {k[2:]: v for k, v in vars(args).items() if k.startswith("t_") and v is not None}
    if args.vocab_size is not None:
        m["vocab_size"] = args.vocab_size
    if args.init_from:
        # the base checkpoint fixes the architecture and the tokenizer; dropout is a training knob
        fixed = sorted(
            ["--" + n.replace("_", "-") for n in m if n != "dropout"]
            + [f for f, v in (("--preset", args.preset), ("--tokenizer", args.tokenizer)) if v]
        )
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)} cannot be combined with --init-from: a fine-tune keeps the "
                "base model's architecture and tokenizer (only --dropout may change)"
            )
        from core.checkpoint import read_config
        from core.runs import latest_checkpoint

        # a resume reads its own checkpoint: the base may have gone since (base_for_run too)
        own = args.resume and latest_checkpoint(args.out) is not None
        model_cfg = read_config(args.out if own else args.init_from)
        if "dropout" in m:
            model_cfg = model_cfg.replace(dropout=m["dropout"])
        train_cfg = TrainConfig(**t)
        train_cfg.window(model_cfg.context_length)
        return model_cfg, train_cfg
    model_cfg, train_cfg = preset(args.preset or "small", **m), TrainConfig(**t)
    train_cfg.window(model_cfg.context_length)  # before any corpus or BPE work
    return model_cfg, train_cfg


def check_resume(args, model_cfg: ModelConfig) -> None:
    """A --resume whose options build another model than its checkpoint holds: one sentence
    naming the fields (not a size-mismatch traceback, and before run.json is rewritten)."""
    from core.checkpoint import read_config
    from core.runs import latest_checkpoint

    if not args.resume or latest_checkpoint(args.out) is None:
        return
    own = read_config(args.out).to_dict()
    ours = model_cfg.to_dict()
    diff = [f"{k}={own[k]!r} (options give {ours[k]!r})" for k in own
            if k not in ("dropout", "vocab_size") and own[k] != ours.get(k)]  # fmt: skip
    if diff:
        run_json = Path(args.out) / "run.json"
        meta = json.loads(run_json.read_text(encoding="utf-8")) if run_json.exists() else {}
        hint = (" It is a fine-tune: pass --init-from as when it started."
                if meta.get("init_from") and not args.init_from else "")  # fmt: skip
        raise ValueError(
            f"--resume: the run's checkpoint has {', '.join(diff)}; pass the options it was "
            f"started with.{hint}"
        )


def load_text(args) -> str:
    if args.text:
        from core.corpora import read_user_text

        return read_user_text(args.text, max_bytes=args.corpus_bytes or 200_000_000)
    from core.corpora import load_corpus

    return load_corpus(args.corpus, n_bytes=args.corpus_bytes, seed=args.corpus_seed)


def get_tokenizer(args, text: str, vocab_size: int, out: Path, dist):
    """Tokenizer from --tokenizer, OUT/tokenizer.json, or a BPE trained on the corpus (rank 0)."""
    from core import distributed as D
    from core.tokenizer import load_tokenizer, train_bpe

    saved = out / "tokenizer.json"
    if args.tokenizer:
        return load_tokenizer(args.tokenizer)
    # every rank looks before the barrier, so before rank 0 may write one: a rank that found
    # rank 0's fresh file would skip the barrier below, where rank 0 then waits forever
    found = saved.exists()
    D.barrier(dist)
    if found:
        return load_tokenizer(saved)
    if dist.is_main:
        tok = train_bpe(text[: args.bpe_bytes], vocab_size)
        out.mkdir(parents=True, exist_ok=True)
        tok.save(saved)
    D.barrier(dist)
    return tok if dist.is_main else load_tokenizer(saved)


def base_for_run(args, model_cfg: ModelConfig, out: Path):
    """A fine-tune's model, tokenizer and origin: the base checkpoint's, or, for a --resume that
    has a checkpoint of its own, a model of `model_cfg` (whose weights Trainer.resume loads; a
    changed --dropout applies) with the run's tokenizer and the origin in run.json, so a base
    deleted since does not stop the resume."""
    from core.checkpoint import load_base, load_checkpoint
    from core.model import GPT
    from core.runs import latest_checkpoint

    if args.resume and latest_checkpoint(out) is not None:
        own = load_checkpoint(out)
        run_json = out / "run.json"
        meta = json.loads(run_json.read_text(encoding="utf-8")) if run_json.exists() else {}
        origin = meta.get("init_from") or own.meta.get("init_from")
        return GPT(model_cfg), own.tokenizer, origin
    ckpt, origin = load_base(args.init_from, dropout=model_cfg.dropout)
    return ckpt.model, ckpt.tokenizer, {"label": str(args.init_from), **origin}


class ProgressBar:
    """Subscriber drawing one status line on stderr (a new line per eval when not a TTY)."""

    def __init__(self, stream=sys.stderr, every_s: float = 10.0):
        self.stream, self.every_s = stream, every_s
        self.tty = stream.isatty()
        self.max_steps, self.start_step, self.t0, self.last = 1, 0, time.time(), 0.0
        self.val = None

    def __call__(self, ev) -> None:
        kind = ev.kind
        if kind == "start":
            self.max_steps, self.start_step, self.t0 = ev.max_steps, ev.step, time.time()
            resumed = f", resumed at step {ev.step}" if ev.resumed else ""
            self.stream.write(
                f"training {ev.num_params / 1e6:.2f}M params, {ev.tokens_per_step} tokens/step, "
                f"{ev.world_size} process(es){resumed}\n"
            )
        elif kind == "step":
            now = time.time()
            if self.tty or now - self.last > self.every_s or ev.step == self.max_steps:
                self.last = now
                frac = ev.step / self.max_steps
                bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
                done = max(1, ev.step - self.start_step)
                eta = (now - self.t0) / done * (self.max_steps - ev.step)
                val = f" val {self.val:.3f}" if self.val is not None else ""
                line = (
                    f"step {ev.step}/{self.max_steps} [{bar}] loss {ev.loss:.3f}{val} "
                    f"lr {ev.lr:.2e} {ev.tokens_per_s / 1e3:.1f}k tok/s eta {eta / 60:.1f} min"
                )
                self.stream.write(("\r" + line) if self.tty else line + "\n")
        elif kind == "eval":
            self.val = ev.val_loss
            if self.tty:
                self.stream.write("\n")
            self.stream.write(
                f"eval step {ev.step}: train {ev.train_loss:.3f} val {ev.val_loss:.3f} "
                f"(ppl {ev.val_ppl:.1f})\n"
            )
        elif kind == "sample":
            self.stream.write(f"sample: {ev.prompt}{ev.text!r}\n")
        elif kind == "timelapse":
            best = {k: max(max(r) for r in v) for k, v in ev.head_scores.items()}
            self.stream.write(f"time-lapse frame {ev.frame} at step {ev.step}: {best}\n")
        elif kind in ("done", "diverged"):
            self.stream.write(f"\n{kind}: {ev.to_dict()}\n")
        self.stream.flush()


def _stop_on_signals(trainer) -> None:
    """Ctrl-C / SIGTERM: finish the step, checkpoint, mark the run stopped; a second one kills."""
    import signal

    def handler(signum, frame):
        trainer.stop()
        signal.signal(signum, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    import torch

    from core import distributed as D
    from core.model import GPT
    from core.trainer import Trainer, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model_cfg, train_cfg = configs_from_args(args)
        check_resume(args, model_cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    from core.runs import RunWriteError, ensure_writable

    try:
        ensure_writable(out)  # a full disk or read-only folder: one sentence, no traceback
    except RunWriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dist = D.init(resolve_device(train_cfg.device))
    from core.data import encode_corpus, split_train_val

    command = "python -m core.train " + shlex.join(argv)
    try:  # bad input (a missing text, a corpus too small, a broken tokenizer): one sentence
        text = load_text(args)
        init_from = None
        if args.init_from:
            model, tok, init_from = base_for_run(args, model_cfg, out)
        else:
            tok = get_tokenizer(args, text, model_cfg.vocab_size, out, dist)
            model_cfg = model_cfg.replace(vocab_size=tok.vocab_size)
        ids = encode_corpus(tok, text)
        train_ids, val_ids = split_train_val(ids, train_cfg.val_fraction)
        torch.manual_seed(train_cfg.seed)
        if not args.init_from:
            model = GPT(model_cfg)
        trainer = Trainer(model, train_ids, val_ids, train_cfg, tokenizer=tok, run_dir=out,
                          dist=dist, command=command, init_from=init_from)  # fmt: skip
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if dist.is_main:
        import hashlib

        from core.runs import create_run

        # the data's fingerprint, so a later change to a corpus generator is detectable
        corpus = {
            "name": "text:" + Path(args.text).name if args.text else args.corpus,
            "bytes": len(text.encode("utf-8")),
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "tokens": int(len(ids)),
            "vocab_size": tok.vocab_size,
        }
        create_run(
            out,
            model=model_cfg.to_dict(),
            train=train_cfg.to_dict(),
            command=command,
            seed=train_cfg.seed,
            corpus=corpus,
        )
    if not args.quiet and dist.is_main:
        trainer.subscribe(ProgressBar())
    if args.resume:
        from core.runs import latest_checkpoint

        if latest_checkpoint(out) is not None:
            trainer.resume(out)
    _stop_on_signals(trainer)
    t0 = time.time()
    try:
        final = trainer.run()
    except RunWriteError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    if args.release and dist.is_main and final.kind == "done":
        from core.runs import release_run

        release_run(out, command=command, wall_time_s=time.time() - t0)
    D.shutdown(dist)
    return 0 if final.kind == "done" or getattr(final, "status", "") == "stopped" else 1


if __name__ == "__main__":
    sys.exit(main())
