"""A training run's spec, its validation and its time/memory estimate (no Streamlit, no jobs).

The Train page's form becomes a `TrainSpec` (model config, training config, corpus, tokenizer);
`validate()` returns messages keyed by field so each sits next to its widget, and `estimate()`
says how big, how much memory (core.stats) and roughly how long, before anything starts.
The spec is stored in the run's run.json, so an interrupted run can be resumed from the page.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from explorer.runlog import check_name

CORPORA = {
    "tinytales": "TinyTales: synthetic children's stories",
    "pyprose": "Python prose: documentation shipped with Python",
    "upload": "Your own text file",
}
TOKENIZERS = {"bpe": "BPE trained on the corpus", "char": "Characters"}
MAX_CORPUS_BYTES = 50_000_000
MAX_MEMORY_BYTES = 6 * 2**30  # refuse runs whose estimate would swap a classroom server
DEFAULT_GFLOPS = {"fp32": 40.0, "bf16": 80.0}  # achieved training FLOP/s on 1 thread (rough)


@dataclass
class TrainSpec:
    label: str = ""
    model: dict = field(
        default_factory=dict
    )  # ModelConfig fields; vocab_size comes from the tokenizer
    train: dict = field(default_factory=dict)  # TrainConfig fields
    corpus: str = "tinytales"  # key of CORPORA
    corpus_bytes: int = 1_000_000  # TinyTales size / cap on the others
    corpus_seed: int = 0
    tokenizer: str = "bpe"  # key of TOKENIZERS
    vocab_size: int = 1024  # BPE only
    # fine-tune: the model picker's key of the model to start from ("default", "run:NAME");
    # its architecture and tokenizer are kept (model may then hold only "dropout")
    init_from: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------- validation


def _field_of(message: str, known: set[str]) -> str:
    first = re.split(r"[\s:=]", message.strip(), maxsplit=1)[0]
    return first if first in known else ""


def validate(spec: TrainSpec, *, upload_bytes: int | None = None) -> dict[str, str]:
    """Messages keyed by field name ("" for the whole form); empty when the spec can start."""
    from core.config import ConfigError
    from core.train_config import TrainConfig, TrainConfigError

    errors: dict[str, str] = {}
    fine = bool(spec.init_from)
    if spec.corpus not in CORPORA:
        errors["corpus"] = f"choose one of {', '.join(CORPORA)}"
    elif spec.corpus == "upload" and not upload_bytes:
        errors["corpus"] = "upload a UTF-8 text file first"
    if not 10_000 <= spec.corpus_bytes <= MAX_CORPUS_BYTES:
        errors["corpus_bytes"] = (
            f"corpus size must be between 10 kB and {MAX_CORPUS_BYTES // 10**6} MB"
        )
    if fine:
        pass  # a fine-tune keeps its base model's tokenizer: nothing to choose
    elif spec.tokenizer not in TOKENIZERS:
        errors["tokenizer"] = f"choose one of {', '.join(TOKENIZERS)}"
    elif spec.tokenizer == "bpe" and not 260 <= spec.vocab_size <= 16_384:
        errors["vocab_size"] = (
            "BPE vocabulary must be between 260 (256 bytes + a few merges) and 16384"
        )
    model = None
    try:
        model = model_config(spec)
    except BaseModelError as exc:
        errors["init_from"] = str(exc)
    except ConfigError as exc:
        errors[exc.field] = str(exc)
    except Exception as exc:  # noqa: BLE001 - the form shows a message, never a traceback
        errors[""] = f"model: {exc}"
    try:
        tc = TrainConfig.from_dict(spec.train)
        tc.grad_accum_steps(1)
    except TrainConfigError as exc:
        errors[_field_of(str(exc), set(spec.train) | {"micro_batch_size"}) or "train"] = str(exc)
        tc = None
    except Exception as exc:  # noqa: BLE001 - the form shows a message, never a traceback
        errors["train"] = f"training: {exc}"
        tc = None
    if model is not None and tc is not None:
        if (tc.seq_len or model.context_length) > model.context_length:
            errors["seq_len"] = (
                f"seq_len can be at most the context length ({model.context_length})"
            )
        if not errors:
            try:
                mem = estimate(spec)["memory"]["total"]
            except Exception:  # noqa: BLE001 - no estimate is not a reason to refuse a run
                mem = 0
            if mem > MAX_MEMORY_BYTES:
                errors["batch_size"] = (
                    f"this would need about {mem / 2**30:.1f} GiB; lower batch, context or width"
                )
    if spec.label and check_name(spec.label):
        errors["label"] = f"run name: {check_name(spec.label)}"
    return errors


class BaseModelError(ValueError):
    """The model a fine-tune would start from is not there or not usable; a sentence for the form."""


def base_checkpoint(key: str) -> tuple[Path, str]:
    """(checkpoint dir, label) of the model picker's entry `key`, which must be the shipped model
    or a finished run here; BaseModelError with a sentence otherwise."""
    from core.checkpoint import CONFIG, CheckpointError, resolve_checkpoint
    from explorer import registry

    entry = registry.resolve(key) if isinstance(key, str) else None
    if entry is None or entry.kind not in ("default", "run") or entry.path is None:
        raise BaseModelError(f"there is no model {key!r} to fine-tune here")
    label = "the shipped model" if entry.kind == "default" else f"run {key[4:]}"
    if entry.kind == "run":
        from core.runs import load_run

        try:
            status = load_run(entry.path).status
        except (OSError, ValueError):
            status = "unreadable"
        if status not in registry.FINISHED:  # its weights would change under the new run
            raise BaseModelError(f"{label} is {status}: fine-tune it once it has finished")
    try:
        path = resolve_checkpoint(entry.path)
    except CheckpointError as exc:
        raise BaseModelError(
            f"{label} cannot be fine-tuned: {registry.hide_paths(str(exc))}"
        ) from None
    try:
        header = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        header = {}
    if not (isinstance(header, dict) and header.get("tokenizer")):
        raise BaseModelError(
            f"{label} has no tokenizer saved with it, and a fine-tune keeps its base's tokenizer"
        )
    return path, label


def model_config(spec: TrainSpec):
    """The ModelConfig the run will train: the base model's (with the spec's dropout) for a
    fine-tune, else the form's sizes with the tokenizer's expected vocabulary."""
    from core.checkpoint import CheckpointError, read_config
    from core.config import ModelConfig
    from explorer import registry

    if not spec.init_from:
        return ModelConfig.from_dict({**spec.model, "vocab_size": _vocab_guess(spec)})
    path, label = base_checkpoint(spec.init_from)
    try:
        cfg = read_config(path)
    except CheckpointError as exc:
        raise BaseModelError(
            f"{label} cannot be fine-tuned: {registry.hide_paths(str(exc))}"
        ) from None
    if "dropout" in spec.model:
        cfg = cfg.replace(dropout=spec.model["dropout"])
    return cfg


def _vocab_guess(spec: TrainSpec) -> int:
    """The model's vocab before the tokenizer exists: the BPE target, or ~100 characters."""
    return spec.vocab_size if spec.tokenizer == "bpe" else 128


# ---------------------------------------------------------------- estimate


def estimate(spec: TrainSpec, runs_root: str | Path | None = None) -> dict:
    """Parameters, memory (core.stats) and a rough wall-clock time for the whole run.

    A step costs 3 x forward FLOPs x tokens at an achieved FLOP/s, plus a fixed Python/optimizer
    overhead per step, per micro-step and per layer (it dominates small models: a 1-layer, 16-wide
    model ran ~6 ms/step here). The newest finished run with the same dtype corrects the model
    by its measured / predicted seconds per step.
    """
    from core import stats
    from core.train_config import TrainConfig
    from core.train_state import resolve_device

    cfg = model_config(spec)
    tc = TrainConfig.from_dict(spec.train)
    seq = tc.seq_len or cfg.context_length
    micro = tc.micro_batch(1)
    mem = stats.memory_estimate(cfg, micro, seq, dtype=tc.dtype,
                                device=resolve_device(tc.device).type)  # fmt: skip
    fwd = _forward_flops(stats.flops_per_token(cfg, seq))
    factor, basis = calibration(runs_root, tc.dtype)
    per_step = step_seconds(cfg, tc) * factor
    # evaluation: eval_batches forward-only micro-batches and one sample at each eval step
    n_evals = tc.max_steps // tc.eval_every + 1 if tc.eval_every else 0
    rate = DEFAULT_GFLOPS.get(tc.dtype, 40.0) * 1e9
    per_eval = tc.eval_batches * micro * seq * fwd / rate + tc.sample_tokens * 1e-3 * cfg.n_layers
    return {
        "params": int(_total(stats.param_counts(cfg))),
        "tokens": tc.max_steps * tc.batch_size * seq,
        "tokens_per_step": tc.batch_size * seq,
        "flops_per_token": fwd,
        "memory": {k: int(v) for k, v in mem.items()},
        "step_seconds": per_step,
        "seconds": tc.max_steps * per_step + n_evals * per_eval * factor,
        "basis": basis,
    }


def step_seconds(cfg, tc) -> float:
    """Predicted seconds per optimizer step before calibration (one thread)."""
    from core import stats

    seq = tc.seq_len or cfg.context_length
    accum = tc.grad_accum_steps(1)
    flops = 3 * _forward_flops(stats.flops_per_token(cfg, seq)) * tc.batch_size * seq
    overhead = 2.5e-3 + accum * (1.5e-3 + 1.5e-3 * cfg.n_layers)
    return flops / (DEFAULT_GFLOPS.get(tc.dtype, 40.0) * 1e9) + overhead


def _forward_flops(d) -> float:
    """Forward FLOPs per token from core.stats.flops_per_token's components."""
    if isinstance(d, dict):
        return float(d.get("forward") or d.get("total") or 0.0)
    return float(d)


def _total(d) -> float:
    if isinstance(d, dict):
        return float(d.get("total", sum(v for v in d.values() if isinstance(v, int | float))))
    return float(d)


def calibration(runs_root, dtype: str) -> tuple[float, str]:
    """(measured / predicted seconds per step, where it comes from) from the newest finished
    run with this dtype; (1, "default") when there is none."""
    from core.config import ModelConfig
    from core.runs import list_runs
    from core.train_config import TrainConfig
    from explorer.registry import runs_dir
    from explorer.runlog import run_log

    try:
        for info in list_runs(runs_root or runs_dir())[:5]:
            if info.status not in ("done", "stopped") or info.train.get("dtype", "fp32") != dtype:
                continue
            m = run_log(info.path)
            if len(m.step) < 20:
                continue
            tail = slice(-min(200, len(m.step) - 1), None)
            steps, secs = m.step[tail], m.elapsed[tail]
            measured = (secs[-1] - secs[0]) / max(1, steps[-1] - steps[0])
            predicted = step_seconds(
                ModelConfig.from_dict(info.model), TrainConfig.from_dict(info.train)
            )
            if measured > 0 and predicted > 0:
                factor = min(5.0, max(0.2, measured / predicted))
                return factor, f"calibrated on run {info.name} (x{factor:.2f})"
    except Exception:  # a calibration problem must never block the form
        pass
    return 1.0, "default for this machine, one thread"
