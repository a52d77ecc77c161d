"""Training configuration: one typed dataclass that travels with every checkpoint.

The model has its own dataclass (`core.config.ModelConfig`); this one says how to train it.
Sizes that follow from others are derived, never hand-typed, and asserted (llm.c style):
the *global* batch (sequences per optimizer step, summed over processes) is what the user
chooses; gradient accumulation is `batch_size // (micro_batch_size * world_size)` and must
divide exactly, so a 1-process and a 2-process run see the same data per step.
Reference: Raschka, "Build a Large Language Model (From Scratch)", ch. 5 and appendix D.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

INF_OK = {"diverge_grad_norm", "heartbeat_every"}  # inf switches these off


class TrainConfigError(ValueError):
    """An invalid training setting; the message names the field."""


@dataclass
class TrainConfig:
    max_steps: int = 1000  # optimizer steps in the whole run
    batch_size: int = 8  # global batch: sequences per optimizer step, over all processes
    micro_batch_size: int | None = None  # sequences per forward; None -> batch_size // world_size
    seq_len: int | None = None  # tokens per sequence; None -> the model's context_length
    lr: float = 1e-3  # peak learning rate (after warm-up)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at max_steps
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    weight_decay: float = 0.1  # AdamW decay, applied to matrices only (not norms/biases/embeddings)
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    dtype: str = "fp32"  # "fp32" | "bf16" (autocast; weights and optimizer stay fp32)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "mps"
    activation_checkpointing: bool = False  # recompute each block in backward to save memory
    compile: bool = False  # torch.compile the model (slow first step, faster after)
    seed: int = 0  # weights, data order and dropout all follow from it
    val_fraction: float = 0.05  # tail of the corpus held out for validation
    eval_every: int = 100  # steps between evaluations (and at the last step); 0 disables
    eval_batches: int = 8  # micro-batches averaged per evaluation (fixed, so evals are comparable)
    sample_every: int = 0  # steps between samples; 0 -> same as eval_every
    sample_prompt: str = "Once upon a time"
    sample_tokens: int = 48
    sample_temperature: float = 0.8
    ckpt_every: int = 500  # steps between checkpoints (and at the end); 0 -> only at the end
    keep_checkpoints: int = 2  # older checkpoints are deleted once a newer one is LATEST
    telemetry_every: int = 10  # steps between per-layer grad norms and update/weight ratios
    timelapse_frames: int = 0  # frames recorded at roughly geometric steps; 0 disables
    timelapse_steps: list[int] = field(default_factory=list)  # explicit frame steps (override)
    timelapse_text: str = ""  # probe text; "" -> a built-in one
    repeat_fraction: float = 0.0  # share of training windows that repeat a span (trainer)
    repeat_random: float = 0.0  # share of those spans made of uniform random tokens
    diverge_grad_norm: float = 1e4  # pre-clip grad norm above this counts as divergence
    heartbeat_every: float = 5.0  # seconds between run.json heartbeats

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        self._check_types()
        positive = ["max_steps", "batch_size", "eval_batches", "sample_tokens"]
        for name in positive:
            if getattr(self, name) < 1:
                raise TrainConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        nonneg = ["warmup_steps", "eval_every", "sample_every", "ckpt_every", "telemetry_every"]
        nonneg += ["timelapse_frames", "grad_clip", "weight_decay", "keep_checkpoints"]
        for name in nonneg:
            if getattr(self, name) < 0:
                raise TrainConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise TrainConfigError(f"micro_batch_size must be >= 1, got {self.micro_batch_size}")
        if self.seq_len is not None and self.seq_len < 2:
            raise TrainConfigError(f"seq_len must be >= 2, got {self.seq_len}")
        if not self.lr > 0:
            raise TrainConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise TrainConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0 < self.val_fraction < 1:
            raise TrainConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0 <= self.repeat_fraction <= 1:
            raise TrainConfigError(f"repeat_fraction must be in [0, 1], got {self.repeat_fraction}")
        if not 0 <= self.repeat_random <= 1:
            raise TrainConfigError(f"repeat_random must be in [0, 1], got {self.repeat_random}")
        if self.dtype not in ("fp32", "bf16"):
            raise TrainConfigError(f"dtype must be 'fp32' or 'bf16', got {self.dtype!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise TrainConfigError(f"device must be auto|cpu|cuda|mps, got {self.device!r}")
        if self.keep_checkpoints < 1:
            raise TrainConfigError("keep_checkpoints must be >= 1 (the latest is always kept)")
        self.timelapse_steps = sorted({int(s) for s in self.timelapse_steps})
        if any(s < 0 or s > self.max_steps for s in self.timelapse_steps):
            raise TrainConfigError(f"timelapse_steps must lie in [0, max_steps={self.max_steps}]")

    def _check_types(self) -> None:
        """Each field holds its annotated type (a "10" from a hand-edited JSON is refused by
        name, not met later as a TypeError); numbers are finite except where inf means off."""
        for f in dataclasses.fields(self):
            name, value, kind = f.name, getattr(self, f.name), str(f.type)
            if value is None and kind.endswith("| None"):
                continue
            is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            if kind.startswith("int") and not is_int:
                raise TrainConfigError(f"{name} must be a whole number, got {value!r}")
            if kind.startswith("float"):
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise TrainConfigError(f"{name} must be a number, got {value!r}")
                if math.isnan(value) or (math.isinf(value) and name not in INF_OK):
                    raise TrainConfigError(f"{name} must be a finite number, got {value!r}")
            if kind == "bool" and not isinstance(value, bool):
                raise TrainConfigError(f"{name} must be true or false, got {value!r}")
            if kind == "str" and not isinstance(value, str):
                raise TrainConfigError(f"{name} must be text, got {value!r}")
            if kind.startswith("list") and not (
                isinstance(value, list | tuple)
                and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
            ):
                raise TrainConfigError(f"{name} must be a list of whole numbers, got {value!r}")
        if self.sample_temperature < 0:
            raise TrainConfigError(
                f"sample_temperature must be >= 0, got {self.sample_temperature}"
            )

    def grad_accum_steps(self, world_size: int = 1) -> int:
        """Micro-steps per optimizer step on each process, derived and asserted."""
        micro = self.micro_batch(world_size)
        per_step = micro * world_size
        if self.batch_size % per_step:
            raise TrainConfigError(
                f"batch_size={self.batch_size} is not divisible by micro_batch_size={micro} "
                f"x world_size={world_size}"
            )
        accum = self.batch_size // per_step
        assert accum * micro * world_size == self.batch_size
        return accum

    def window(self, context_length: int) -> int:
        """Tokens per training window: seq_len, else the model's context; never beyond it."""
        seq = self.seq_len or context_length
        if seq > context_length:
            raise TrainConfigError(
                f"seq_len={seq} exceeds the model's context_length={context_length}"
            )
        return seq

    def micro_batch(self, world_size: int = 1) -> int:
        if self.micro_batch_size is not None:
            return self.micro_batch_size
        if self.batch_size % world_size:
            raise TrainConfigError(
                f"batch_size={self.batch_size} is not divisible by world_size={world_size}"
            )
        return self.batch_size // world_size

    def frame_steps(self) -> list[int]:
        """Steps at which the time-lapse records a frame (dense early, sparse late)."""
        if self.timelapse_steps:
            return list(self.timelapse_steps)
        return geometric_steps(self.max_steps, self.timelapse_frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TrainConfigError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**d)


def geometric_steps(max_steps: int, n: int) -> list[int]:
    """About n distinct steps in [0, max_steps], spaced evenly in log(1 + step).

    Heads and embeddings change fastest early, so early frames are dense.
    """
    if n <= 0:
        return []
    if n == 1:
        return [max_steps]
    import math

    top = math.log1p(max_steps)
    steps = {round(math.expm1(top * i / (n - 1))) for i in range(n)}
    return sorted(min(max_steps, max(0, s)) for s in steps)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then cosine decay.

    A pure function of the step and the config, so a resumed run needs no scheduler state.
    Warm-up rises from lr/warmup to lr over `warmup_steps`; cosine falls from lr at the end of
    warm-up to lr * min_lr_ratio at `max_steps` and stays there.
    """
    import math

    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1.0 + math.cos(math.pi * progress))
