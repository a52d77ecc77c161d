"""Command line: generate text from a checkpoint or a run directory.

    python -m core.sample --run runs/my-run --prompt "Once upon a time" \\
        --temperature 0.8 --top-k 50 --top-p 0.95 --seed 0 --max-new-tokens 200

--run takes a run directory (its LATEST checkpoint is used), a checkpoint directory or a `.pt`
file; everything is loaded through core.checkpoint.load_checkpoint. Text is printed as it is
generated. Unknown options fail with their name; bad values fail with a one-line message.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.checkpoint import CheckpointError, load_checkpoint
from core.sampling import SamplingError, stream


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.sample", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    p.add_argument("--run", required=True, help="run dir, checkpoint dir or .pt file")
    p.add_argument("--prompt", default="", help="text to continue (default: end-of-text token)")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--tokenizer", default=None, help="tokenizer file when the checkpoint has none")
    p.add_argument("--stop-at-eot", action="store_true", help="stop at the end-of-text token")
    p.add_argument("--no-cache", action="store_true", help="recompute every step (slow)")
    return p


def _tokenizer(ck, run: Path, explicit):
    from core.tokenizer import load_tokenizer

    if explicit:
        return load_tokenizer(explicit)
    if ck.tokenizer is not None:
        return ck.tokenizer
    for candidate in (run / "tokenizer.json", run.parent / "tokenizer.json"):
        if candidate.is_file():
            return load_tokenizer(candidate)
    raise CheckpointError(f"{run}: no tokenizer found; pass --tokenizer PATH")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ck = load_checkpoint(args.run)
        tok = _tokenizer(ck, Path(args.run), args.tokenizer)
        ids = tok.encode(args.prompt) if args.prompt else []
        if not ids:
            if tok.eot_id is None:
                raise SamplingError(
                    "the prompt is empty and this tokenizer has no end-of-text token"
                )
            ids = [tok.eot_id]
        stop = tok.eot_id if args.stop_at_eot else None
        steps = stream(ck.model, ids, args.max_new_tokens, args.temperature, args.top_k,
                       args.top_p, args.seed, stop, not args.no_cache)  # fmt: skip
        sys.stdout.write(args.prompt)
        new: list[int] = []
        shown = ""
        for step in steps:
            new.append(step.token_id)
            text = tok.decode(new)
            if not text.endswith("\ufffd"):  # wait for the rest of a split UTF-8 character
                sys.stdout.write(text[len(shown) :])
                sys.stdout.flush()
                shown = text
        text = tok.decode(new)
        sys.stdout.write(text[len(shown) :] + "\n")
    except (CheckpointError, SamplingError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
