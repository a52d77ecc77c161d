"""Sizes of a model, from its config alone: parameters per component, FLOPs per token, memory.

Pure arithmetic — no model is built — so the Architecture page can call these on every slider
move. A test checks the parameter count against a real GPT for every variant and the FLOPs
against torch's FLOP counter.

Conventions: a multiply-add is 2 FLOPs; only matmuls are counted (norms, softmax and
activations are a few FLOPs per element, negligible next to C² terms); causal attention counts
the keys each query actually sees, (T+1)/2 on average, not all T. Training ≈ 3× forward
(backward computes gradients for inputs and weights). Reference: Kaplan et al. 2020 §2.1;
Korthikanti et al. 2022 (activation memory).
"""

from __future__ import annotations

from core.config import ModelConfig

_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def _norm_params(cfg: ModelConfig) -> int:
    if cfg.norm == "rmsnorm":
        return cfg.d_model
    return cfg.d_model * (2 if cfg.bias else 1)


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Trainable parameters by component; `total` equals GPT(cfg).num_params()."""
    C, V, F, L = cfg.d_model, cfg.vocab_size, cfg.ff_dim, cfg.n_layers
    b = 1 if cfg.bias else 0
    fc_out = 2 * F if cfg.activation == "swiglu" else F
    attention = 3 * C * C + C * C + b * (3 * C + C)  # qkv + proj
    mlp = C * fc_out + F * C + b * (fc_out + C)  # fc (+ gate) + proj
    norms = 2 * _norm_params(cfg)  # ln1 + ln2
    counts = {
        "embeddings": V * C,
        "position": cfg.context_length * C if cfg.pos_encoding == "learned" else 0,
        "attention_per_block": attention,
        "mlp_per_block": mlp,
        "norms_per_block": norms,
        "attention": L * attention,
        "mlp": L * mlp,
        "norms": L * norms + _norm_params(cfg),  # + ln_f
        "lm_head": 0 if cfg.tie_embeddings else V * C,
    }
    counts["blocks"] = L * (attention + mlp + norms)
    counts["total"] = sum(
        counts[k] for k in ("embeddings", "position", "attention", "mlp", "norms", "lm_head")
    )
    return counts


def flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> dict[str, float]:
    """Forward FLOPs per token by component at sequence length seq_len (default: context)."""
    T = seq_len or cfg.context_length
    C, V, F, L = cfg.d_model, cfg.vocab_size, cfg.ff_dim, cfg.n_layers
    keys = (T + 1) / 2  # causal: query t sees t+1 keys
    mlp_mats = 3 if cfg.activation == "swiglu" else 2
    out = {
        "attention_qkv": L * 2 * C * 3 * C,
        "attention_scores": L * 2 * keys * C,  # q·k for every head: H·D = C per key
        "attention_values": L * 2 * keys * C,  # weighted sum of v
        "attention_out": L * 2 * C * C,
        "mlp": L * 2 * C * F * mlp_mats,
        "lm_head": 2 * C * V,
    }
    out = {k: float(v) for k, v in out.items()}
    out["forward"] = sum(out.values())
    out["backward"] = 2 * out["forward"]
    out["train_step"] = 3 * out["forward"]
    return out


def memory_estimate(cfg: ModelConfig, batch: int, seq_len: int | None = None,
                    dtype: str = "fp32", device: str = "cpu") -> dict[str, int]:  # fmt: skip
    """Bytes for training: fp32 weights, grads and AdamW moments, plus what the forward saves
    for backward at this batch and sequence length (dtype "bf16" = autocast activations).

    Counted as core.model runs on `device` (a test holds it within 5% of the tensors autograd
    saves on the CPU, for every variant): per block and token, the two norms' fp32 inputs
    (RMSNorm, unfused in torch, also keeps its normalised input), each matmul's input (norm
    outputs, z, the MLP hidden after the non-linearity), the MLP hidden before it (not for
    ReLU, whose backward reads its output; SwiGLU: gate and up, silu(gate) too), q, k, v, and
    the softmax patterns: 3/4 of the T×T square per head on the CPU (two query row blocks,
    core.attention), a log-sum-exp per head elsewhere (flash kernels); then the final norm's
    input and output, and the loss: one (N, V) gradient buffer fused on the CPU
    (core.layers.linear_cross_entropy), the logits plus their fp32 copy elsewhere. Under bf16
    autocast the bf16 copies of the matmul weights are saved too, once, whatever the batch.
    """
    if dtype not in _BYTES:
        raise ValueError(f"dtype must be one of {', '.join(_BYTES)}, got {dtype!r}")
    T = seq_len or cfg.context_length
    N = param_counts(cfg)["total"]
    a = _BYTES[dtype]
    C, V, F, L, H = cfg.d_model, cfg.vocab_size, cfg.ff_dim, cfg.n_layers, cfg.n_heads
    norms = 2 * C * 4 * (2 if cfg.norm == "rmsnorm" else 1)  # fp32 inputs (+ normalised)
    # the MLP hidden: gate and up, silu(gate), the product | pre and post GELU | ReLU's output
    # (what its backward reads is what the projection reads)
    mlp = {"swiglu": 4 * F, "gelu": 2 * F}.get(cfg.activation, F)
    half = -(-T // 2)  # query rows per block; block i sees the keys [0, end of block i)
    patterns = H * (half * half + (T - half) * T) / T if device == "cpu" else H * 4 / a
    per_block = norms + (6 * C + mlp + patterns) * a  # 6C: 2 norm outputs, q, k, v, z
    head = C * 4 + C * a + V * a  # final norm input (fp32), its output, the loss's gradient
    if device != "cpu":  # F.linear + F.cross_entropy: the logits and their fp32 copy
        head += V * 4
    acts = batch * T * (L * per_block + head)
    if a < 4:  # autocast's bf16 weight copies, saved by every matmul that used one
        acts += a * (L * (4 * C * C + (3 if cfg.activation == "swiglu" else 2) * C * F) + V * C)
    out = {"weights": 4 * N, "grads": 4 * N, "adamw": 8 * N, "activations": int(acts)}
    out["total"] = sum(out.values())
    return out
