"""Glassbox GPT core: the model, tokenizers, trainer and analysis — a library with no UI.

Use it from a notebook or the command line::

    import core
    model = core.GPT(core.ModelConfig(vocab_size=512, n_layers=2))
    logits, trace = core.capture(model, ids, names=["blocks.*.attn.pattern"])

Public names are resolved lazily (PEP 562), so ``import core.tokenizer`` does not pay for torch
and each submodule stays importable on its own.
"""

from importlib import import_module

_EXPORTS = {
    "ModelConfig": "core.config",
    "ConfigError": "core.config",
    "preset": "core.config",
    "PRESETS": "core.config",
    "GPT": "core.model",
    "capture": "core.probes",
    "probe_names": "core.probes",
    "sampling_stages": "core.sampling",
    "generate": "core.sampling",
    "stream": "core.sampling",
    "validate_sampling": "core.sampling",
    "SamplingStages": "core.sampling",
    "GenStep": "core.sampling",
    "Generation": "core.sampling",
    "SamplingError": "core.sampling",
    "ProbeError": "core.probes",
    "Checkpoint": "core.checkpoint",
    "param_counts": "core.stats",
    "flops_per_token": "core.stats",
    "memory_estimate": "core.stats",
    "save_checkpoint": "core.checkpoint",
    "load_checkpoint": "core.checkpoint",
    "load_base": "core.checkpoint",
    "CheckpointError": "core.checkpoint",
    "import_hf_gpt2": "core.hf_gpt2",
    "export_hf_gpt2": "core.hf_gpt2",
    "train_bpe": "core.tokenizer",
    "load_tokenizer": "core.tokenizer",
    "TrainConfig": "core.train_config",
    "Trainer": "core.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
