"""Command line: train a BPE, encode text, trace how text becomes tokens.

    python -m core.tokenizer train --corpus tinytales --bytes 1000000 --vocab-size 4096 --out tok.json
    python -m core.tokenizer encode --tokenizer tok.json "Once upon a time"
    python -m core.tokenizer trace --tokenizer gpt2 "Hello world"

--tokenizer takes a saved tokenizer file (or a folder with tokenizer.json), a .tiktoken ranks
file, or a named encoding (gpt2, r50k_base, cl100k_base, o200k_base) found on this machine.
Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import TokenizerError, load_tokenizer, named_encoding, train_bpe
from .named import NAMES
from .patterns import PATTERNS


def resolve_tokenizer(spec: str):
    """A file/folder path, or the name of a tiktoken encoding."""
    if spec in NAMES:
        return named_encoding(spec)
    if not Path(spec).exists():
        raise TokenizerError(f"{spec!r} is neither a tokenizer file nor one of: {', '.join(NAMES)}")
    return load_tokenizer(spec)


def _text(args) -> str:
    if args.file:
        from core.corpora import read_user_text

        return read_user_text(args.file)
    if args.text is None:
        raise TokenizerError("give the text as an argument or with --file")
    return args.text


def cmd_train(args) -> None:
    from core.corpora import load_corpus, read_user_text

    if args.input:
        text = read_user_text(args.input)
    else:
        text = load_corpus(args.corpus, n_bytes=args.bytes, seed=args.seed)

    def progress(done, total):
        if not args.quiet:
            print(f"\rmerges {done}/{total}", end="", file=sys.stderr, flush=True)

    tok = train_bpe(text, args.vocab_size, pattern=args.pattern, progress=progress)
    if not args.quiet:
        print(file=sys.stderr)
    path = tok.save(args.out)
    summary = {
        "out": str(path),
        "vocab_size": tok.vocab_size,
        "merges": tok.n_merges,
        "hash": tok.content_hash,
        "text_bytes": len(text.encode("utf-8")),
        **{k: round(v, 4) for k, v in tok.train_stats.items()},
    }
    print(json.dumps(summary, indent=2))


def cmd_encode(args) -> None:
    tok = resolve_tokenizer(args.tokenizer)
    ids = tok.encode(_text(args))
    if args.labels:
        for i in ids:
            print(f"{i}\t{tok.token_label(i)!r}")
    else:
        print(json.dumps(ids))


def cmd_trace(args) -> None:
    tok = resolve_tokenizer(args.tokenizer)
    if not hasattr(tok, "trace"):
        raise TokenizerError(f"{tok.name} is not a BPE tokenizer; only BPE has merges to trace")
    records = tok.trace(_text(args))
    if args.json:
        print(json.dumps(records, ensure_ascii=False))
        return
    for r in records:
        print(f"chunk {r['chunk']!r}  bytes {r['bytes']}")
        for m in r["merges"]:
            parts = " ".join(repr(tok.token_label(i)) for i in m["ids"])
            print(
                f"  merge {m['merge']:>6}: {tok.token_label(m['left'])!r} + "
                f"{tok.token_label(m['right'])!r} -> {m['label']!r}   {parts}"
            )
        print(f"  ids {r['ids']}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.tokenizer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a byte-level BPE and save it as JSON")
    t.add_argument("--corpus", default="tinytales", help="built-in corpus: tinytales | pyprose")
    t.add_argument("--input", help="train on this UTF-8 text file instead of a built-in corpus")
    t.add_argument("--bytes", type=int, default=1_000_000, help="corpus size in bytes (built-in)")
    t.add_argument("--seed", type=int, default=0, help="TinyTales seed")
    t.add_argument("--vocab-size", type=int, default=4096, help="bytes + merges + special tokens")
    t.add_argument(
        "--pattern",
        default="gpt4",
        help=f"pre-tokenisation regex, or one of: {', '.join(PATTERNS)}",
    )
    t.add_argument("--out", default="tokenizer.json", help="output file (or folder)")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.set_defaults(func=cmd_train)

    for name, func, helptext in [
        ("encode", cmd_encode, "print the ids of a text"),
        ("trace", cmd_trace, "show the chunks and merges that turn a text into ids"),
    ]:
        e = sub.add_parser(name, help=helptext)
        e.add_argument("text", nargs="?", help="the text (or use --file)")
        e.add_argument("--file", help="read the text from this UTF-8 file")
        e.add_argument(
            "--tokenizer",
            required=True,
            help="tokenizer.json, a .tiktoken file, or gpt2 | cl100k_base | ...",
        )
        if name == "encode":
            e.add_argument("--labels", action="store_true", help="one 'id<TAB>token' per line")
        else:
            e.add_argument("--json", action="store_true", help="records as JSON")
        e.set_defaults(func=func)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from core.corpora import CorpusError

    try:
        args.func(args)
    except (TokenizerError, CorpusError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
