"""Checkpoints: a directory of safetensors weights and JSON, written atomically, read safely.

    step_000100/
      model.safetensors        weights (a tied lm_head is stored once, as tok_emb.weight)
      config.json              {"format": "glassbox-gpt/1", "model": {...}, "meta": {...},
                                "tokenizer": {"file": "tokenizer.json", "hash": ...} | null}
      tokenizer.json           optional
      train_state.safetensors  optional (the trainer's optimizer state etc.)
      train_state.json         optional

Saving writes everything into a temporary sibling directory, fsyncs it and renames it into
place, so a crash leaves either the old checkpoint or the new one, never half of one. Loading
validates every name and shape against the config and says plainly what is wrong. Nothing is
ever unpickled: safetensors holds only tensors, and a `.pt` file is read with
`torch.load(weights_only=True)`.

Reference: safetensors format (Hugging Face); nanoGPT's checkpoint dict (config saved with weights).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.config import ConfigError, ModelConfig
from core.model import GPT
from core.runs import replaced_checkpoint

FORMAT = "glassbox-gpt/1"
WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.json"
EXTRA_TENSORS, EXTRA_JSON = "train_state.safetensors", "train_state.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read; the message says what and where."""


@dataclass
class Checkpoint:
    model: GPT
    config: ModelConfig
    tokenizer: object | None
    meta: dict
    extra_tensors: dict = field(default_factory=dict)
    extra_json: dict = field(default_factory=dict)
    path: Path | None = None


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise CheckpointError(f"cannot store {type(obj).__name__} in checkpoint JSON")


def _write_json(path: Path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_tensors(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    """safetensors' save_file, with its I/O failures (e.g. a full disk) raised as OSError."""
    try:
        save_file(tensors, path, metadata=metadata)
    except SafetensorError as err:
        found = re.search(r"os error (\d+)", str(err))
        if found:
            code = int(found.group(1))
            raise OSError(code, os.strerror(code), str(path)) from err
        raise CheckpointError(f"cannot write {path}: {err}") from err


def model_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """The state dict as saved: contiguous CPU tensors, a tied lm_head.weight left out."""
    state = model.state_dict()
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_checkpoint(path, model: GPT, *, tokenizer=None, meta: dict | None = None,
                    extra_tensors: dict | None = None, extra_json: dict | None = None,
                    overwrite: bool = False) -> Path:  # fmt: skip
    """Write a checkpoint directory at `path` atomically and return it.

    `path` must not exist unless overwrite=True: then the old one is renamed aside and the new
    one into place (a kill between the two leaves the old one beside the missing path, where
    loading and core.runs.latest_checkpoint find it: core.runs.replaced_checkpoint).
    tokenizer: any object with `save(path)` and `content_hash`. meta: JSON-able provenance
    (command, seed, commit, step, losses ...). extra_*: the trainer's state.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path} already exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        _save_tensors(model_tensors(model), tmp / WEIGHTS, metadata={"format": FORMAT})
        tok_ref = None
        if tokenizer is not None:
            tokenizer.save(tmp / TOKENIZER)
            tok_ref = {"file": TOKENIZER, "hash": tokenizer.content_hash}
        header = {"format": FORMAT, "model": model.config.to_dict(), "meta": meta or {},
                  "tokenizer": tok_ref}  # fmt: skip
        _write_json(tmp / CONFIG, header)
        if extra_tensors:
            # clone: optimizer state may share storage, which safetensors refuses
            tensors = {
                k: v.detach().to("cpu").contiguous().clone() for k, v in extra_tensors.items()
            }
            _save_tensors(tensors, tmp / EXTRA_TENSORS)
        if extra_json is not None:
            _write_json(tmp / EXTRA_JSON, extra_json)
        for f in tmp.iterdir():
            _fsync(f)
        _fsync(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
        _fsync(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def resolve_checkpoint(path) -> Path:
    """A checkpoint dir (or .pt file) from a checkpoint dir, a run dir with LATEST, or a file in one."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}: the path does not exist")
    if p.is_file():
        if p.suffix in (".pt", ".pth"):
            return p
        if p.name in (CONFIG, WEIGHTS):
            return p.parent
        if p.name != "LATEST":
            raise CheckpointError(f"{p} is not a checkpoint: expected a directory or a .pt file")
        p = p.parent
    if (p / CONFIG).is_file():
        return p
    for latest in (p / "LATEST", p / "ckpt" / "LATEST"):
        if latest.is_file():
            name = latest.read_text(encoding="utf-8").strip()
            for base in (latest.parent, p):
                target = (base / name).resolve()
                if not target.is_relative_to(p.resolve()):
                    continue
                if (target / CONFIG).is_file():
                    return target
                if name and not target.exists() and (old := replaced_checkpoint(target)):
                    return old  # a replace of it was killed between its two renames
            raise CheckpointError(f"{latest} points to {name!r}, which is not a checkpoint here")
    raise CheckpointError(
        f"{p} is not a checkpoint (no {CONFIG}) and not a run directory (no LATEST file)"
    )


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: missing {path.name} ({what})")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt: not valid JSON ({err})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is corrupt: expected a JSON object")
    return payload


def _read_tensors(path: Path, what: str, device) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: missing {path.name} ({what})")
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{path} is corrupt: not a readable safetensors file ({err})"
        ) from None


def _config(d, where) -> ModelConfig:
    try:
        return ModelConfig.from_dict(d)
    except (ConfigError, TypeError) as err:
        raise CheckpointError(f"{where}: invalid model config: {err}") from None


def _check_size(config: ModelConfig, tensors: dict[str, torch.Tensor], where) -> None:
    """Refuse a config far bigger than the weights that came with it, before building it.

    A hand-made config.json (an upload) could otherwise make the server allocate gigabytes
    (say vocab_size=10**9) before the name/shape check runs. core.stats counts exactly the
    numbers `model_tensors` holds; the sinusoidal/RoPE tables are float64 buffers of T x C.
    """
    from core import stats  # pure arithmetic on the config, no model build

    tied = config.tie_embeddings
    given = sum(v.numel() for k, v in tensors.items() if not (tied and k == "lm_head.weight"))
    T = config.context_length
    tables = {"sinusoidal": T * config.d_model, "rope": T * config.head_dim}
    wanted = stats.param_counts(config)["total"] + 2 * tables.get(config.pos_encoding, 0)
    if wanted > 2 * given + 1_000_000:  # loose: ordinary mismatches get the exact message below
        raise CheckpointError(
            f"{where}: the config describes a model of {wanted:,} numbers but the weights hold "
            f"only {given:,}; not building it (wrong config.json?)"
        )


def build_model(config: ModelConfig, tensors: dict[str, torch.Tensor], where) -> GPT:
    """A GPT with exactly these weights; names and shapes checked, every mismatch reported."""
    tensors = {k.removeprefix("_orig_mod."): v for k, v in tensors.items()}
    _check_size(config, tensors, where)
    model = GPT(config)
    expected = model_tensors(model)
    if config.tie_embeddings and "lm_head.weight" in tensors:
        tensors = dict(tensors)
        tied = tensors.pop("lm_head.weight")
        if "tok_emb.weight" in tensors and not torch.equal(tied, tensors["tok_emb.weight"]):
            raise CheckpointError(
                f"{where}: lm_head.weight differs from tok_emb.weight but the config ties them"
            )
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(
                f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}"
            )
        raise CheckpointError(f"{where}: weight names do not match the config: {'; '.join(parts)}")
    wrong = [f"{k} is {tuple(tensors[k].shape)}, expected {tuple(v.shape)}"
             for k, v in expected.items() if tensors[k].shape != v.shape]  # fmt: skip
    if wrong:
        raise CheckpointError(f"{where}: wrong shapes: {'; '.join(wrong[:5])}")
    bad = [k for k, v in tensors.items() if not v.is_floating_point()]
    if bad:
        raise CheckpointError(f"{where}: {bad[0]} is not a floating-point tensor")
    model.load_state_dict(tensors, strict=False)
    return model.eval()


def _load_pt(path: Path, map_location) -> Checkpoint:
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # the restricted unpickler raises many types
        raise CheckpointError(f"{path}: refused or unreadable as plain tensors ({err})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict with 'config' and 'model'")
    cfg_d = obj.get("config", obj.get("model_config"))
    state = obj.get("model", obj.get("state_dict"))
    if not isinstance(cfg_d, dict) or not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: a .pt checkpoint needs a 'config' dict and a 'model' state dict"
        )
    config = _config(cfg_d, path)
    model = build_model(config, state, path).to(map_location)
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    return Checkpoint(model, config, None, meta, path=path)


def read_config(path) -> ModelConfig:
    """The model config of a checkpoint (dir, run dir or `.pt` file) without building the model:
    config.json alone for a directory, the whole file for a `.pt`."""
    resolved = resolve_checkpoint(path)
    if resolved.is_file():
        return load_checkpoint(resolved).config
    header = _read_json(resolved / CONFIG, "model config")
    if header.get("format") != FORMAT or not isinstance(header.get("model"), dict):
        raise CheckpointError(f"{resolved / CONFIG}: not a {FORMAT} checkpoint config")
    return _config(header["model"], resolved / CONFIG)


def load_base(path, *, dropout: float | None = None, expect_sha256: str | None = None,
              map_location="cpu") -> tuple[Checkpoint, dict]:  # fmt: skip
    """A checkpoint to fine-tune from (Raschka ch. 6-7 start from pre-trained weights, never
    from scratch): its model, with `dropout` in place of the stored one when given, its
    tokenizer, and where it came from: {"path", "step", "sha256"} of the weights file.

    Fine-tuning keeps the architecture and the tokenizer, so a checkpoint without a tokenizer
    is refused. `expect_sha256` (a restart of a run that began from this checkpoint) refuses
    weights that changed since.
    """
    from core.runs import sha256_file

    ckpt = load_checkpoint(path, map_location=map_location)
    if ckpt.tokenizer is None:
        raise CheckpointError(
            f"{ckpt.path} has no tokenizer: fine-tuning needs the tokenizer the model was "
            "trained with"
        )
    weights = ckpt.path if ckpt.path.is_file() else ckpt.path / WEIGHTS
    sha = sha256_file(weights)
    if expect_sha256 is not None and sha != expect_sha256:
        raise CheckpointError(
            f"{ckpt.path}: its weights changed since this run was created from them "
            "(a different training step?); start a new run from the model as it is now"
        )
    if dropout is not None and dropout != ckpt.config.dropout:
        config = ckpt.config.replace(dropout=dropout)
        model = GPT(config).to(map_location)
        model.load_state_dict(ckpt.model.state_dict())
        ckpt = Checkpoint(model.eval(), config, ckpt.tokenizer, ckpt.meta, path=ckpt.path)
    step = ckpt.meta.get("step")
    origin = {"path": str(ckpt.path.absolute()), "step": step if isinstance(step, int) else None,
              "sha256": sha}  # fmt: skip
    return ckpt, origin


def load_checkpoint(path, *, map_location="cpu", load_extra: bool = False) -> Checkpoint:
    """Load a checkpoint dir, the LATEST checkpoint of a run dir, or a `.pt` file."""
    path = resolve_checkpoint(path)
    if path.is_file():
        return _load_pt(path, map_location)
    header = _read_json(path / CONFIG, "model config")
    if header.get("format") != FORMAT or not isinstance(header.get("model"), dict):
        raise CheckpointError(f"{path / CONFIG}: not a {FORMAT} checkpoint config")
    config = _config(header["model"], path / CONFIG)
    tensors = _read_tensors(path / WEIGHTS, "weights", "cpu")
    model = build_model(config, tensors, path / WEIGHTS).to(map_location)
    tokenizer = None
    ref = header.get("tokenizer")
    if ref:
        from core.tokenizer import load_tokenizer  # TOK's package; only needed here

        name = ref.get("file", TOKENIZER) if isinstance(ref, dict) else None
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            # a file beside config.json, by name: never a path to elsewhere on the machine
            raise CheckpointError(
                f"{path / CONFIG}: the tokenizer must be a file name, got {name!r}"
            )
        tok_path = path / name
        if not tok_path.is_file():
            raise CheckpointError(f"{path}: missing {tok_path.name} (the tokenizer)")
        try:
            tokenizer = load_tokenizer(tok_path)
        except Exception as err:
            raise CheckpointError(f"{tok_path}: cannot load the tokenizer ({err})") from None
        if ref.get("hash") and tokenizer.content_hash != ref["hash"]:
            raise CheckpointError(f"{tok_path}: tokenizer hash differs from the one in {CONFIG}")
    extra_tensors, extra_json = {}, {}
    if load_extra:
        if (path / EXTRA_TENSORS).exists():
            extra_tensors = _read_tensors(path / EXTRA_TENSORS, "training state", map_location)
        if (path / EXTRA_JSON).exists():
            extra_json = _read_json(path / EXTRA_JSON, "training state")
    meta = header.get("meta") if isinstance(header.get("meta"), dict) else {}
    return Checkpoint(model, config, tokenizer, meta, extra_tensors, extra_json, path)
