"""Tokenizer and corpus benchmark; prints one JSON object. Run by hand, never collected:

    python tests/bench/bench_tokenizer.py [--repeats 3] [--big-mb 100]

- BPE training to vocab 4096 on 1 MB of TinyTales and 1 MB of pyprose: our trainer (phases:
  pre-tokenise, initial pair count, merges) next to Hugging Face `tokenizers` ByteLevel BPE on
  the same text in the same run (goal: ours <= 2x theirs). Best of `repeats`.
- Encoding MB/s through the tiktoken.Encoding (goal ~20+ MB/s) and the pure-Python encoder.
- TinyTales generation MB/s (100 MB by default) and corpus variety figures.
The machine is shared: compare ratios taken in one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from core.corpora import pyprose, tinytales
from core.corpora.stats import corpus_stats
from core.tokenizer import ENDOFTEXT, GPT2_PATTERN, GPT4_PATTERN, explain, train_bpe

VOCAB = 4096
MB = 1_000_000


def timed(fn):
    """(wall seconds, CPU seconds of this process, result). On a shared machine the CPU time
    of a single-threaded job is close to its wall time on an idle one."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def best(fn, repeats):
    runs = [timed(fn) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2]


def hf_train(text: str) -> float:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=[ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    docs = text.split(ENDOFTEXT)  # documents, as one would feed it a corpus
    tok.train_from_iterator(docs, trainer)
    return tok.get_vocab_size()


def bench_training(name: str, text: str, repeats: int):
    """Interleave ours (GPT-4 and GPT-2 regex) and HF (all cores, and one) in each repeat, so
    that a burst of load from other users hits all alike. Reports the best wall and CPU time
    of each, and the median of the per-repeat wall-time ratios."""
    row = {"corpus": name, "mb": round(len(text.encode()) / MB, 3)}
    runs = {"ours_gpt4": [], "ours_gpt2": [], "hf": [], "hf_1thread": []}
    stats = {"ours_gpt4": [], "ours_gpt2": []}
    tok = None
    for _ in range(repeats):
        for label, pattern in (("ours_gpt4", GPT4_PATTERN), ("ours_gpt2", GPT2_PATTERN)):
            wall, cpu, t = timed(lambda p=pattern: train_bpe(text, VOCAB, pattern=p))
            runs[label].append((wall, cpu))
            stats[label].append(t.train_stats)
            tok = t if label == "ours_gpt4" else tok
        wall, cpu, row["hf_vocab"] = timed(lambda: hf_train(text))
        runs["hf"].append((wall, cpu))
        # HF trains on all cores by default; ours uses one, so also time HF on one
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        wall, cpu, _ = timed(lambda: hf_train(text))
        runs["hf_1thread"].append((wall, cpu))
        del os.environ["TOKENIZERS_PARALLELISM"]
    for label, r in runs.items():
        row[f"{label}_wall_s"] = round(min(w for w, _ in r), 4)
        row[f"{label}_cpu_s"] = round(min(c for _, c in r), 4)
    for label in ("ours_gpt4", "ours_gpt2"):
        s = min(stats[label], key=lambda d: d["total_s"])
        row[f"{label}_phases"] = {
            k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()
        }
        ratios = sorted(w / h for (w, _), (h, _) in zip(runs[label], runs["hf"]))
        row[f"ratio_{label}_vs_hf_wall_median"] = round(ratios[len(ratios) // 2], 2)
        for ref in ("hf", "hf_1thread"):
            row[f"ratio_{label}_vs_{ref}_cpu"] = round(
                row[f"{label}_cpu_s"] / row[f"{ref}_cpu_s"], 2
            )
    row["ours_vocab"] = tok.vocab_size
    return row, tok


def bench_encoding(tok, text: str, repeats: int) -> dict:
    mb = len(text.encode()) / MB
    wall, cpu, ids = best(lambda: tok.encode(text), repeats)
    bwall, bcpu, _ = best(lambda: tok.encode_batch(text.split(ENDOFTEXT)), repeats)
    small = text[: len(text) // 10]
    pwall, pcpu, py_ids = best(lambda: explain.encode(tok, small), 1)
    assert py_ids == tok.encode(small)
    small_mb = len(small.encode()) / MB
    return {
        "text_mb": round(mb, 3),
        "tiktoken_mb_s_wall": round(mb / wall, 2),
        "tiktoken_mb_s_cpu": round(mb / cpu, 2),
        "tiktoken_batch_mb_s_wall": round(mb / bwall, 2),
        "python_encoder_mb_s_wall": round(small_mb / pwall, 3),
        "python_encoder_mb_s_cpu": round(small_mb / pcpu, 3),
        "python_equals_tiktoken": True,
        "bytes_per_token": round(len(text.encode()) / len(ids), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--big-mb", type=int, default=100, help="TinyTales size for the generation timing"
    )
    args = p.parse_args()

    out = {
        "bench": "tokenizer",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg()[0],
    }
    tales = tinytales.generate(MB)
    wall, cpu, prose = timed(lambda: pyprose.generate(MB))
    out["pyprose_1mb_build"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}

    training = []
    for name, text in (("tinytales", tales), ("pyprose", prose)):
        row, tok = bench_training(name, text, args.repeats)
        row["encoding"] = bench_encoding(tok, text, args.repeats)
        training.append(row)
    out["training"] = training

    wall, cpu, big = best(lambda: tinytales.generate(args.big_mb * MB), 1)
    out["tinytales_generate"] = {
        "mb": args.big_mb,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "mb_s_cpu": round(args.big_mb / cpu, 1),
    }
    del big
    out["variety"] = {
        "tinytales_1mb": corpus_stats(tales),
        "tinytales_10mb": corpus_stats(tinytales.generate(10 * MB)),
        "pyprose_1mb": corpus_stats(prose),
    }
    out["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
