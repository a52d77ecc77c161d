"""The tensor work behind the app's pages, as plain functions (no streamlit).

Pages never import torch or numpy (STYLE rule 2); they call these through the cached wrappers
in explorer/loaders.py, which is the only module that knows about st.cache_*. Every function
here returns numpy arrays, plain records or core dataclasses, never tensors.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import math
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class ModelUnavailable(Exception):
    """A model the picker offered cannot be loaded; the message is for the page, as is."""


def load_model(kind: str, path: str | None):
    """(model, tokenizer, config, run_dir, meta) for a registry entry; eval mode, frozen.

    Every failure becomes ModelUnavailable with a plain message (never a traceback in a page).
    """
    p = Path(path) if path else None
    # pages name a model by what it is, never by the server's folders (a classroom sees them)
    name = {"default": "The shipped model", "gpt2": "The local GPT-2 folder"}.get(
        kind, f"The model {p.name}" if p else "The model"
    )
    if kind != "gpt2" and (p is None or not p.exists()):
        where = "assets/default" if kind == "default" else (p.name if p else "this server")
        raise ModelUnavailable(
            f"No model at {where}. The shipped model has not been built yet or was removed; "
            "train one on the Train page or with `python -m core.train`."
        )
    try:
        return _gpt2(path) if kind == "gpt2" else _from_checkpoint(p)
    except ModelUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure (bad file, missing module) -> message
        detail = str(exc).replace(f"{path}{os.sep}", "").replace(str(path), p.name if p else "")
        raise ModelUnavailable(f"{name} could not be loaded: {detail}") from exc


def _gpt2(path):
    from core.hf_gpt2 import import_hf_gpt2
    from core.tokenizer import named_encoding

    model = import_hf_gpt2(path)
    # the Hugging Face folder's merges.txt is GPT-2's tokenizer; else tiktoken's cached file
    local = Path(path) / "merges.txt"
    tok = named_encoding("gpt2", local) if local.is_file() else named_encoding("gpt2")
    return _freeze(model), tok, model.config, None, {"source": str(path)}


def _from_checkpoint(p: Path):
    from core.checkpoint import load_checkpoint

    target = p
    if (p / "run.json").is_file():  # a run dir: its newest complete checkpoint
        from core.runs import latest_checkpoint

        target = latest_checkpoint(p)
        if target is None:
            raise ModelUnavailable(f"The run {p.name} has no complete checkpoint yet.")
    ckpt = load_checkpoint(target)
    tokenizer = ckpt.tokenizer
    if tokenizer is None and (p / "tokenizer.json").is_file():
        from core.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(p / "tokenizer.json")
    if tokenizer is None:
        raise ModelUnavailable(f"{p.name} has no tokenizer.json, so text cannot be encoded for it.")
    if tokenizer.vocab_size > ckpt.config.vocab_size:  # text would give ids with no embedding
        raise ValueError(
            f"its tokenizer has {tokenizer.vocab_size} tokens, more than the model's vocabulary "
            f"of {ckpt.config.vocab_size}: they were not trained together."
        )
    run_dir = p if (p / "run.json").is_file() else None
    return _freeze(ckpt.model), tokenizer, ckpt.config, run_dir, dict(ckpt.meta or {})


def _freeze(model):
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def unpack_upload(files: Sequence[tuple[str, bytes]], root: Path, max_bytes: int) -> Path:
    """Write an uploaded checkpoint (a .zip, or its loose files) into root/<sha12>/ and return it.

    Only the checkpoint's own file names are accepted (no paths from the archive are used), the
    total unpacked size is capped (zip bombs), and nothing is unpickled. Raises ValueError with
    a message for the page.
    """
    loose: dict[str, bytes] = {}
    for name, data in files:
        if name.lower().endswith(".zip"):
            try:
                zf = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile as exc:
                raise ValueError(f"{name} is not a valid zip archive.") from exc
            with zf:
                infos = [i for i in zf.infolist() if Path(i.filename).name in CHECKPOINT_FILES]
                if sum(i.file_size for i in infos) > max_bytes:
                    raise ValueError(f"{name} unpacks to more than {max_bytes // 2**20} MiB.")
                for info in infos:
                    try:
                        loose[Path(info.filename).name] = zf.read(info)
                    except (
                        zipfile.BadZipFile,
                        RuntimeError,
                        NotImplementedError,
                        zlib.error,
                        EOFError,
                        OSError,
                        lzma.LZMAError,
                    ) as exc:  # fmt: skip (bz2: OSError)
                        # damaged, encrypted, or an unsupported compression
                        why = "it is password-protected" if info.flag_bits & 1 else str(exc)
                        raise ValueError(
                            f"{name} could not be unpacked ({Path(info.filename).name}: {why})."
                        ) from None
        elif Path(name).name in CHECKPOINT_FILES:
            loose[Path(name).name] = data
        else:
            raise ValueError(
                f"{name} is not part of a checkpoint: upload a .zip of the checkpoint folder, "
                "or config.json + model.safetensors (+ tokenizer.json)."
            )
    missing = [f for f in ("config.json", "model.safetensors") if f not in loose]
    if missing:
        raise ValueError(f"The upload has no {' or '.join(missing)}: a checkpoint needs both.")
    if sum(len(b) for b in loose.values()) > max_bytes:
        raise ValueError(f"The checkpoint is larger than {max_bytes // 2**20} MiB.")
    digest = hashlib.sha256()
    for name in sorted(loose):
        digest.update(name.encode() + b"\0" + hashlib.sha256(loose[name]).digest())
    target = root / digest.hexdigest()[:12]
    if target.is_dir():  # the same files, already unpacked (by another student, say)
        return target
    # unpacked privately, then renamed into place whole: a folder in use (memory-mapped
    # weights) is never rewritten under its reader, which killed the server with SIGBUS
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
        for name, data in loose.items():
            (tmp / name).write_bytes(data)
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(
            f"The upload could not be stored on the server ({exc.strerror})."
        ) from None
    try:
        os.rename(tmp, target)
    except OSError:  # another session put the same files in place first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text))


def token_records(tokenizer, text: str, limit: int | None = None) -> list[dict]:
    """One record per token: id, label (display text), bytes (hex), n_bytes."""
    ids = tokenizer.encode(text)
    if limit is not None:
        ids = ids[:limit]
    out = []
    for i in ids:
        b = tokenizer.token_bytes(i)
        out.append(dict(id=int(i), label=tokenizer.token_label(i), hex=b.hex(" "), n_bytes=len(b)))
    return out


def vocab_labels(tokenizer, size: int | None = None) -> list[str]:
    """Display label of every token id of a model with `size` ids (for chart axes): a padded
    vocabulary's ids past the tokenizer's are labelled "<id>"."""
    from core.neighbours import safe_label

    return [safe_label(tokenizer, i) for i in range(size or tokenizer.vocab_size)]


def crop_prompt(ids: list[int], keep: int) -> tuple[list[int], int]:
    """The last `keep` ids and how many were cropped from the front (the model's window)."""
    keep = max(1, keep)
    if len(ids) <= keep:
        return list(ids), 0
    return list(ids[-keep:]), len(ids) - keep


@torch.inference_mode()
def next_token_logits(model, ids: Sequence[int]) -> np.ndarray:
    """(V,) float64 logits for the token after `ids` (already cropped to the context)."""
    x = torch.tensor([list(ids)], dtype=torch.long)  # (B=1, T)
    logits, _ = model(x)  # (1, T, V)
    return logits[0, -1].double().numpy()


def generate(model, ids, max_new_tokens, temperature, top_k, top_p, seed, stop_token=None):
    """core.sampling.generate with the app's argument order; returns the Generation record."""
    from core.sampling import generate as _generate

    return _generate(
        model,
        list(ids),
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        stop_token=stop_token,
    )


def distinct_n(samples: Sequence[Sequence[int]], n: int) -> float:
    """Distinct n-grams / all n-grams over the samples (Li et al. 2016); 0 when there are none."""
    grams = [tuple(s[i : i + n]) for s in samples for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@torch.inference_mode()
def mean_logprob(model, prompt: Sequence[int], new: Sequence[int]) -> float:
    """Mean log-probability of the `new` tokens under the model itself at T=1 (teacher forced).

    One pass over the last context_length + 1 tokens: past the context, the earliest new tokens
    fall out of the window (as they did for the generator's sliding window) and are not scored.
    """
    if not new:
        return float("nan")
    seq = (list(prompt) + list(new))[-(model.config.context_length + 1) :]
    scored = min(len(new), len(seq) - 1)  # new tokens with at least one token before them
    x = torch.tensor([seq[:-1]], dtype=torch.long)  # (1, n-1)
    logits, _ = model(x)  # (1, n-1, V)
    logp = torch.log_softmax(logits[0].double(), dim=-1)
    targets = torch.tensor(seq[1:])
    picked = logp[torch.arange(len(targets)), targets][-scored:]
    return float(picked.mean())


def diversity(
    model, ids, temperatures, n_samples, max_new_tokens, top_k, top_p, seed
) -> list[dict]:
    """For each temperature, N samples (seeds seed..seed+N-1): distinct-1/2 and mean log-prob."""
    rows = []
    for t in temperatures:
        samples, logps = [], []
        for i in range(n_samples):
            g = generate(model, ids, max_new_tokens, t, top_k, top_p, seed + i)
            samples.append(g.new_ids)
            logps.append(mean_logprob(model, ids, g.new_ids))
        finite = [v for v in logps if not math.isnan(v)]
        rows.append(
            dict(
                temperature=float(t),
                distinct_1=distinct_n(samples, 1),
                distinct_2=distinct_n(samples, 2),
                mean_logprob=sum(finite) / len(finite) if finite else float("nan"),
            )
        )
    return rows


def bpe_replay(tokenizer, text: str) -> dict:
    """Step through a BPE tokenizer's merges on `text` (core BPETokenizer.replay).

    Returns {"steps": merge numbers where the text changes, 0 first (raw bytes),
    "counts": tokens after each step, "labels": token labels after each step,
    "merges": for each step, "left + right -> new" labels (empty for step 0)}.
    """
    replay = tokenizer.replay(text)
    steps = [0, *replay.steps]
    by_merge = {}
    for ev in replay.events:
        by_merge.setdefault(ev["merge"], ev)
    labels, counts, merges = [], [], []
    for k in steps:
        ids = replay[k]
        labels.append([tokenizer.token_label(i) for i in ids])
        counts.append(len(ids))
        ev = by_merge.get(k)
        merges.append(
            (
                tokenizer.token_label(ev["left"]),
                tokenizer.token_label(ev["right"]),
                tokenizer.token_label(ev["new"]),
            )
            if ev
            else None
        )
    return {"steps": steps, "counts": counts, "labels": labels, "merges": merges}


def window_records(tokenizer, text: str, context_length: int, stride: int, n: int) -> dict:
    """The first n sliding windows over the text's ids: input x = ids[s : s+T], target
    y = ids[s+1 : s+T+1] (the next token at every position). Also the total window count."""
    from core.data import WindowDataset

    ids = tokenizer.encode(text)
    ds = WindowDataset(np.asarray(ids), context_length, stride)
    rows = []
    for i in range(min(n, len(ds))):
        x, y = ds[i]
        rows.append(
            dict(
                start=ds.start(i),
                input=[tokenizer.token_label(int(t)) for t in x],
                target=[tokenizer.token_label(int(t)) for t in y],
            )
        )
    return {"n_ids": len(ids), "n_windows": len(ds), "rows": rows}


def stream(model, ids, max_new_tokens, temperature, top_k, top_p, seed):
    """core.sampling.stream: GenStep records one at a time (for the page to draw as they come)."""
    from core.sampling import stream as _stream

    yield from _stream(
        model,
        list(ids),
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
    )


def stage_summary(stages) -> dict:
    """What the sampling stages kept: counts after top-k and top-p, the most likely final id."""
    best = int(np.argmax(stages.final))
    return dict(
        kept_k=int(stages.kept_top_k.sum()),
        kept_p=int((stages.kept_top_k & stages.kept_top_p).sum()),
        best=best,
        best_p=float(stages.final[best]),
    )


def train_bpe(text: str, vocab_size: int, progress=None):
    """core.tokenizer.train_bpe; progress(done, total) is called as merges are learned.

    Not cached: the caller draws progress, and a cached function may not draw (it would be
    replayed); the page keeps the result in its session.
    """
    from core.tokenizer import train_bpe as _train

    return _train(text, vocab_size, progress=progress)
