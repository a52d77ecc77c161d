"""Training state beyond the weights: optimizer groups, telemetry helpers, the exact-resume
snapshot, and the device / activation-checkpointing switches the Trainer applies.

Exact resume needs four things besides the weights (nanoGPT resumes only the first two):
the AdamW moments and step counts, the step (the learning rate is a pure function of it),
the RNG states (dropout draws from torch's global generator), and the data position (the
trainer's batch generator). They travel in a checkpoint's `train_state.safetensors` (tensors)
and `train_state.json` (everything else), written by `core.checkpoint.save_checkpoint`.
"""

from __future__ import annotations

import torch

STATE_FORMAT = "glassbox-train-state/1"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def block_params(model: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
    """Parameters of each transformer block, in order (for per-layer telemetry)."""
    return [list(b.parameters()) for b in model.blocks]


def tensors_norm(tensors) -> float:
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([t.float().norm() for t in tensors])))


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each block's activations in backward instead of storing them.

    Patches the instance's `forward` (state-dict names are unchanged).
    """
    from torch.utils.checkpoint import checkpoint

    for block in model.blocks:
        inner = block.forward

        def fwd(*args, _inner=inner, **kwargs):
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = fwd


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on 2-D weight matrices only; norms, biases and embeddings are exempt.

    Embeddings are exempt because decay pulls rare tokens' rows towards zero for no reason; a
    tied lm_head is the same tensor as tok_emb, so it is exempt too (named_parameters yields a
    shared tensor once).
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_embedding = name.startswith(("tok_emb", "pos_emb"))
        if p.dim() >= 2 and not is_embedding:
            decay.append(p)
        else:
            no_decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def pack_state(trainer) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, json) snapshot of everything a resumed run needs beyond the weights."""
    opt = trainer.optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in opt["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.data"] = trainer.data_gen.get_state()
    if torch.cuda.is_available() and trainer.device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(trainer.device)
    extra = {
        "format": STATE_FORMAT,
        "step": trainer.step,
        "tokens": trainer.tokens,
        "elapsed": trainer._elapsed,
        "world_size": trainer.dist.world_size,
        "train_config": trainer.cfg.to_dict(),
        "param_groups": opt["param_groups"],
        "optim_scalars": scalars,
        "last_loss": trainer.last_loss,
    }
    return tensors, extra


def unpack_state(trainer, tensors: dict[str, torch.Tensor], extra: dict) -> None:
    """Inverse of pack_state: restore optimizer, step, RNG and data position into `trainer`."""
    if not extra or extra.get("format") != STATE_FORMAT:
        raise ValueError("checkpoint has no training state (was it saved by the Trainer?)")
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    for idx, sc in extra.get("optim_scalars", {}).items():
        state.setdefault(int(idx), {}).update(sc)
    # the moments come from the checkpoint; weight decay, betas and eps from this run's config
    # (load_state_dict would bring back the old run's, while run.json records the new ones)
    current = [{k: g[k] for k in ("weight_decay", "betas", "eps")}
               for g in trainer.optimizer.param_groups]  # fmt: skip
    trainer.optimizer.load_state_dict({"state": state, "param_groups": extra["param_groups"]})
    for group, hyper in zip(trainer.optimizer.param_groups, current):
        group.update(hyper)
    torch.set_rng_state(tensors["rng.torch"])
    trainer.data_gen.set_state(tensors["rng.data"])
    if "rng.cuda" in tensors and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], trainer.device)
    trainer.step = int(extra["step"])
    trainer.tokens = int(extra["tokens"])
    trainer._elapsed = float(extra.get("elapsed", 0.0))
    trainer.last_loss = extra.get("last_loss")
