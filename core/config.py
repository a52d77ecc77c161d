"""Model configuration: one frozen dataclass that travels with every checkpoint.

Every architectural choice the app lets a person make is a field here, and every impossible
combination fails at construction with a `ConfigError` whose message starts with the field's
name (so a form can put the message next to the right widget). Derived sizes (head dim D,
feed-forward width F) are properties, never typed by hand.

Reference: nanoGPT's GPTConfig (a config dataclass saved in the checkpoint); GPT-2 sizes from
Radford et al. 2019; SwiGLU width 8/3*C from Shazeer 2020, "GLU Variants Improve Transformer".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

ACTIVATIONS = ("gelu", "relu", "swiglu")
NORMS = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("pre", "post")
POS_ENCODINGS = ("learned", "sinusoidal", "rope", "none")
INITS = ("gpt2", "xavier")


class ConfigError(ValueError):
    """An impossible configuration; `field` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 4096  # V: number of token ids
    context_length: int = 256  # T max: longest sequence the model attends over
    d_model: int = 256  # C: width of the residual stream
    n_layers: int = 4  # L: transformer blocks
    n_heads: int = 4  # H: attention heads; head dim D = C // H
    d_ff: int | None = None  # F: feed-forward width; None -> 4*C, or ~8/3*C for swiglu
    dropout: float = 0.0  # dropout on attention weights and residual branches (training only)
    activation: str = "gelu"  # "gelu" (tanh approximation, as GPT-2) | "relu" | "swiglu"
    norm: str = "layernorm"  # "layernorm" | "rmsnorm"
    norm_position: str = "pre"  # "pre" (GPT-2) | "post" (original Transformer)
    pos_encoding: str = "learned"  # "learned" | "sinusoidal" | "rope" | "none"
    bias: bool = True  # biases in linear layers and layernorms
    tie_embeddings: bool = True  # lm_head shares the token-embedding matrix
    init: str = "gpt2"  # "gpt2" (N(0, 0.02), residual projections scaled) | "xavier"
    norm_eps: float = 1e-5  # epsilon inside the norms
    rope_base: float = 10000.0  # RoPE frequency base (used only with pos_encoding="rope")

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(name, f"must be an integer, got {value!r}")
            if value < 1:
                raise ConfigError(name, f"must be at least 1, got {value}")
        if self.d_ff is not None and (
            isinstance(self.d_ff, bool) or not isinstance(self.d_ff, int) or self.d_ff < 1
        ):
            raise ConfigError("d_ff", f"must be a positive integer or None, got {self.d_ff!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(
                "n_heads", f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
            )
        for name, allowed in (
            ("activation", ACTIVATIONS),
            ("norm", NORMS),
            ("norm_position", NORM_POSITIONS),
            ("pos_encoding", POS_ENCODINGS),
            ("init", INITS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    name, f"must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
                )
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout", f"must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.norm_eps, int | float) or not 0.0 < self.norm_eps < 1.0:
            raise ConfigError("norm_eps", f"must be in (0, 1), got {self.norm_eps!r}")
        if self.pos_encoding == "rope":
            if self.head_dim % 2:
                raise ConfigError(
                    "pos_encoding", f"rope needs an even head dim, got D={self.head_dim}"
                )
            if not (isinstance(self.rope_base, int | float) and self.rope_base > 1.0):
                raise ConfigError("rope_base", f"must be > 1, got {self.rope_base!r}")
        if self.pos_encoding == "sinusoidal" and self.d_model % 2:
            raise ConfigError(
                "pos_encoding", f"sinusoidal needs an even d_model, got {self.d_model}"
            )
        for name in ("bias", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        """D = C // H."""
        return self.d_model // self.n_heads

    @property
    def ff_dim(self) -> int:
        """Resolved feed-forward width F."""
        if self.d_ff is not None:
            return self.d_ff
        if self.activation == "swiglu":
            # 8/3*C keeps the parameter count of a 4*C MLP (three matrices instead of two);
            # rounded up to a multiple of 32 for friendlier matmul shapes.
            return 32 * math.ceil(8 * self.d_model / 3 / 32)
        return 4 * self.d_model

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown model config field {unknown[0]!r}")
        return cls(**d)

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed (unknown names fail with the name)."""
        return ModelConfig.from_dict({**self.to_dict(), **changes})


PRESETS: dict[str, ModelConfig] = {
    # tests: a few thousand parameters, runs in milliseconds
    "tiny": ModelConfig(vocab_size=128, context_length=32, d_model=32, n_layers=2, n_heads=4),
    # the shipped default model and the benchmark shape
    "small": ModelConfig(vocab_size=4096, context_length=256, d_model=256, n_layers=4, n_heads=4),
    # GPT-2 124M shape (Hugging Face "gpt2")
    "gpt2": ModelConfig(
        vocab_size=50257, context_length=1024, d_model=768, n_layers=12, n_heads=12
    ),
}


def preset(name: str, **overrides) -> ModelConfig:
    """A named preset with some fields overridden: `preset("small", n_layers=6)`."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides)
