"""GPT-2 in the Hugging Face layout: import a folder (config.json + model.safetensors) into our
GPT, and export a GPT-2-shaped model of ours back to that layout.

Two differences to bridge: names (`transformer.h.0.attn.c_attn` is our `blocks.0.attn.qkv`), and
GPT-2's Conv1D modules, which store weights as (in, out) — the transpose of nn.Linear's
(out, in). GPT-2's "gelu_new" is the tanh approximation, which is our "gelu". A hub name is
fetched only when the hub answers within a few seconds; offline the user gets a plain message.

Reference: Radford et al. 2019; transformers' modeling_gpt2.py (the layout, not the code).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.checkpoint import CheckpointError, build_model
from core.config import ConfigError, ModelConfig
from core.model import GPT

# ours <- theirs, per block; Conv1D weights are transposed on the way
_BLOCK = {
    "ln1.weight": "ln_1.weight", "ln1.bias": "ln_1.bias",
    "attn.qkv.weight": "attn.c_attn.weight", "attn.qkv.bias": "attn.c_attn.bias",
    "attn.proj.weight": "attn.c_proj.weight", "attn.proj.bias": "attn.c_proj.bias",
    "ln2.weight": "ln_2.weight", "ln2.bias": "ln_2.bias",
    "mlp.fc.weight": "mlp.c_fc.weight", "mlp.fc.bias": "mlp.c_fc.bias",
    "mlp.proj.weight": "mlp.c_proj.weight", "mlp.proj.bias": "mlp.c_proj.bias",
}  # fmt: skip
_TOP = {"tok_emb.weight": "wte.weight", "pos_emb.weight": "wpe.weight",
        "ln_f.weight": "ln_f.weight", "ln_f.bias": "ln_f.bias"}  # fmt: skip
_TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
HUB_TIMEOUT_S = 3.0


def config_from_hf(hf: dict, where="config.json") -> ModelConfig:
    act = hf.get("activation_function", "gelu_new")
    if act not in (*_TANH_GELU, "relu"):
        raise CheckpointError(
            f"{where}: activation_function {act!r} is not supported (gelu_new, relu)"
        )
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf.get(flag):
            raise CheckpointError(f"{where}: {flag}=true is not supported")
    if hf.get("scale_attn_weights", True) is False:  # scores not divided by √D: other logits
        raise CheckpointError(f"{where}: scale_attn_weights=false is not supported")
    try:
        return ModelConfig(
            vocab_size=hf["vocab_size"], context_length=hf["n_positions"], d_model=hf["n_embd"],
            n_layers=hf["n_layer"], n_heads=hf["n_head"], d_ff=hf.get("n_inner"),
            activation="relu" if act == "relu" else "gelu",
            norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            tie_embeddings=hf.get("tie_word_embeddings", True),
        )  # fmt: skip
    except KeyError as err:
        raise CheckpointError(f"{where}: missing GPT-2 config field {err.args[0]!r}") from None
    except ConfigError as err:
        raise CheckpointError(f"{where}: {err}") from None


def _hub_reachable(host: str = "huggingface.co", timeout: float = HUB_TIMEOUT_S) -> bool:
    """True if a TCP connection to the hub opens in time (DNS included: run in a thread)."""
    ok: list[bool] = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def _from_hub(name: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:
        raise CheckpointError(
            f"{name!r} is not a local folder, and huggingface_hub is not installed"
        ) from None
    cached = [try_to_load_from_cache(name, f) for f in ("config.json", "model.safetensors")]
    if all(isinstance(c, str) for c in cached):
        return Path(cached[1]).parent
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline or not _hub_reachable():
        raise CheckpointError(
            f"{name!r} is not a local folder and the Hugging Face hub cannot be reached "
            f"(offline). Download its config.json and model.safetensors on a connected "
            f"machine and pass that folder instead."
        )
    try:
        for f in ("config.json", "model.safetensors"):
            last = hf_hub_download(name, f, etag_timeout=HUB_TIMEOUT_S)
    except Exception as err:
        raise CheckpointError(f"could not fetch {name!r} from the hub: {err}") from None
    return Path(last).parent


def import_hf_gpt2(path_or_name) -> GPT:
    """A GPT with the weights of a Hugging Face GPT-2 (local folder, or hub name when online)."""
    folder = Path(path_or_name)
    if not folder.is_dir():
        looks_local = str(path_or_name).startswith((".", "/", "~")) or os.sep + os.sep in str(
            path_or_name
        )
        if looks_local or folder.exists():
            raise CheckpointError(f"{path_or_name}: no such folder")
        folder = _from_hub(str(path_or_name))
    cfg_path, weights = folder / "config.json", folder / "model.safetensors"
    for f in (cfg_path, weights):
        if not f.is_file():
            raise CheckpointError(
                f"{folder}: missing {f.name} (a GPT-2 folder needs config.json and model.safetensors)"
            )
    try:
        hf = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{cfg_path} is corrupt: {err}") from None
    if hf.get("model_type", "gpt2") != "gpt2":
        raise CheckpointError(f"{cfg_path}: model_type {hf.get('model_type')!r} is not gpt2")
    config = config_from_hf(hf, cfg_path)
    try:
        theirs = load_file(weights)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights} is corrupt: {err}") from None
    theirs = {k.removeprefix("transformer."): v for k, v in theirs.items()
              if not k.endswith((".attn.bias", ".attn.masked_bias"))}  # fmt: skip
    ours: dict[str, torch.Tensor] = {}
    pairs = list(_TOP.items()) + [
        (f"blocks.{i}.{o}", f"h.{i}.{t}") for i in range(config.n_layers) for o, t in _BLOCK.items()
    ]
    for o, t in pairs:
        if t in theirs:
            v = theirs.pop(t)
            conv = t.endswith(".weight") and ("c_attn" in t or "c_proj" in t or "c_fc" in t)
            ours[o] = v.t().contiguous() if conv else v
    if "lm_head.weight" in theirs:
        ours["lm_head.weight"] = theirs.pop("lm_head.weight")
    ours.update({f"(unmapped) {k}": v for k, v in theirs.items()})
    return build_model(config, ours, weights)


def export_hf_gpt2(model: GPT, path) -> Path:
    """Write `model` as a Hugging Face GPT-2 folder (config.json + model.safetensors)."""
    cfg = model.config
    need = {"activation": "gelu", "norm": "layernorm", "norm_position": "pre",
            "pos_encoding": "learned", "bias": True}  # fmt: skip
    for k, v in need.items():
        if getattr(cfg, k) != v:
            raise CheckpointError(
                f"{k}: the GPT-2 layout needs {k}={v!r}, this model has {getattr(cfg, k)!r}"
            )
    state = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    inverse = {**{o: t for o, t in _TOP.items()}}
    for i in range(cfg.n_layers):
        inverse.update({f"blocks.{i}.{o}": f"h.{i}.{t}" for o, t in _BLOCK.items()})
    for o, t in inverse.items():
        v = state[o]
        conv = t.endswith(".weight") and ("c_attn" in t or "c_proj" in t or "c_fc" in t)
        out["transformer." + t] = (v.t() if conv else v).contiguous()
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = state["lm_head.weight"].contiguous()
    hf = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
        "vocab_size": cfg.vocab_size, "n_positions": cfg.context_length, "n_embd": cfg.d_model,
        "n_layer": cfg.n_layers, "n_head": cfg.n_heads,
        "n_inner": None if cfg.ff_dim == 4 * cfg.d_model else cfg.ff_dim,
        "activation_function": "gelu_new", "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
        "scale_attn_weights": True, "tie_word_embeddings": cfg.tie_embeddings,
        "dtype": "float32",
    }  # fmt: skip
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(out, path / "model.safetensors", metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
    return path
