"""A preallocated key/value cache for generation: prefill once, then one token per step.

Without a cache every new token re-runs attention over the whole prefix (O(T²) per token);
with it, each step computes q, k, v for the one new position and attends over stored keys.
The tensors are allocated once at full size so a decode step allocates nothing for the cache.

Reference: Pope et al. 2022, "Efficiently Scaling Transformer Inference" §2; Raschka,
"Build a Large Language Model (From Scratch)", bonus material on KV caches.
"""

from __future__ import annotations

import math
import threading
import weakref
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from core.config import ModelConfig
from core.layers import apply_rope


class KVCache:
    """Keys and values of every layer, k and v each (L, B, H, Tmax, D); `pos` positions filled."""

    def __init__(
        self,
        config: ModelConfig,
        batch: int = 1,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        self.max_len = max_len or config.context_length
        shape = (config.n_layers, 2, batch, config.n_heads, self.max_len, config.head_dim)
        # keys and values in one tensor so a decode step stores both with one copy
        self.kv = torch.zeros(shape, dtype=dtype, device=device)
        self.k, self.v = self.kv[:, 0], self.kv[:, 1]  # (L, B, H, Tmax, D) views
        self.pos = 0

    def reset(self) -> None:
        """Forget every position (the tensors are reused, not cleared)."""
        self.pos = 0

    @property
    def free(self) -> int:
        """Positions still available before the cache is full."""
        return self.max_len - self.pos


def _linear_t(weight: torch.Tensor, bias: torch.Tensor | None):
    """y = x @ weightᵀ + bias for one row x (1, in), in the fastest form measured here.

    fp32: from a pre-transposed (in, out) copy — a chain of (1, in) x (in, out) products ran
    ~1.6x faster than F.linear's (out, in) layout. bf16: through oneDNN with the weight
    prepacked once (half the bytes per step of fp32). Copies are made once per generation.
    """
    if weight.dtype == torch.bfloat16:
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, 1)
            torch.ops.mkldnn._linear_pointwise(weight[:1], packed, bias, "none", [], "")  # probe

            def run(x):
                return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")

            return run
        except (RuntimeError, AttributeError):
            return lambda x: F.linear(x, weight, bias)
    wt = weight.t().contiguous()  # (in, out)
    if bias is None:
        return lambda x: torch.mm(x, wt)
    return lambda x: torch.addmm(bias, x, wt)


def _norm_fn(module):
    """The norm as a bare aten call (F.layer_norm's Python checks cost more than the op here)."""
    eps, shape, w = module.eps, list(module.normalized_shape), module.weight
    if isinstance(module, torch.nn.RMSNorm):
        return lambda x: torch.rms_norm(x, shape, w, eps)
    b = module.bias
    return lambda x: torch.layer_norm(x, shape, w, b, eps)


_BLAS: list | None = None  # numpy's BLAS thread controls, found once


def _numpy_blas_on(threads: int) -> bool:
    """Whether numpy's BLAS can run our products on at most `threads` threads.

    numpy's OpenBLAS computes a one-row product x @ W about twice as fast as torch's here
    (measured: the 17 products of one decode step, ~330 vs ~630 µs on one thread), but it has
    its own thread pool. We align it with torch's thread count (via threadpoolctl, a scikit-learn
    dependency) and use it only when that worked, so "one torch thread" stays one thread.
    """
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController().select(user_api="blas").lib_controllers
        except Exception:  # noqa: BLE001 -- missing or failing: fall back to torch's products
            _BLAS = []
    if not _BLAS:
        return False
    for lib in _BLAS:
        if lib.get_num_threads() != threads:
            lib.set_num_threads(threads)  # a no-op when another Python thread controls it
    counts = [lib.get_num_threads() for lib in _BLAS]
    return all(n is not None and n <= threads for n in counts)


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PREPARED_LOCK = threading.Lock()


def _prepared_numpy(model):
    """fp32 decode weights as numpy arrays: per layer ((in, out) weight, bias or None) for qkv,
    out, fc and proj, and the head's (C, V) weight, for x (in,) @ w + b.

    All in one buffer aligned to 2 MiB: numpy asks the kernel for huge pages on allocations this
    big, so the ~17 MB a step streams through needs ~9 TLB entries instead of ~4000 (the 17
    products ran 7-12% faster here than from separate arrays)."""
    mods = [m for b in model.blocks for m in (b.attn.qkv, b.attn.proj, b.mlp.fc, b.mlp.proj)]
    pairs = [(m.weight, m.bias) for m in mods] + [(model.lm_head.weight, None)]
    total = sum(w.numel() + (0 if bias is None else bias.numel()) for w, bias in pairs)
    align = 2**21 // 4  # float32 elements in 2 MiB
    buf = np.empty(total + align, dtype=np.float32)
    at = (-buf.ctypes.data // 4) % align

    def take(t: torch.Tensor) -> np.ndarray:
        nonlocal at
        out = buf[at : at + t.numel()].reshape(t.shape)
        out[...] = t.detach().numpy()
        at += t.numel()
        return out

    arrays = [(take(w.t()), None if bias is None else take(bias)) for w, bias in pairs]
    layers = [tuple(arrays[i : i + 4]) for i in range(0, len(mods), 4)]
    return layers, arrays[-1][0]


def _prepared(model, kind: str = "torch"):
    """Per-layer step functions (kind "torch") or numpy arrays (kind "numpy") over prepared
    weight copies, cached per model while its parameters are unchanged (an in-place update
    bumps their autograd version and invalidates it; torch's fused AdamW does not, so code
    that steps one must bump it itself: torch.autograd.graph.increment_version, as
    core.trainer does)."""
    stamp = (kind, tuple((id(p), p._version, p.dtype) for p in model.parameters()))
    with _PREPARED_LOCK:
        hit = _PREPARED.get(model, {}).get(kind)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    if kind == "numpy":
        prepared = _prepared_numpy(model)
        with _PREPARED_LOCK:
            _PREPARED.setdefault(model, {})[kind] = (stamp, prepared)
        return prepared
    layers = []
    for block in model.blocks:
        attn, mlp = block.attn, block.mlp
        layers.append((
            _norm_fn(block.ln1), _linear_t(attn.qkv.weight, attn.qkv.bias),
            _linear_t(attn.proj.weight, attn.proj.bias), _norm_fn(block.ln2),
            _linear_t(mlp.fc.weight, mlp.fc.bias), _linear_t(mlp.proj.weight, mlp.proj.bias),
        ))  # fmt: skip
    prepared = (layers, _norm_fn(model.ln_f), _linear_t(model.lm_head.weight, None))
    with _PREPARED_LOCK:
        _PREPARED.setdefault(model, {})[kind] = (stamp, prepared)
    return prepared


def _on_numpy(fn):
    """A torch op on numpy vectors (shared memory both ways): fn(tensor) -> tensor."""
    return lambda x: fn(torch.from_numpy(x)).numpy()


def _numpy_norm(module):
    """The norm on a numpy (C,) vector, still torch's kernel (one call, the full forward's)."""
    eps, shape, w = module.eps, list(module.normalized_shape), module.weight.detach()
    if isinstance(module, torch.nn.RMSNorm):
        return _on_numpy(lambda x: torch.rms_norm(x, shape, w, eps))
    b = None if module.bias is None else module.bias.detach()
    return _on_numpy(lambda x: torch.layer_norm(x, shape, w, b, eps))


def _numpy_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """apply_rope for one position: x (H, D), cos and sin (D/2,)."""
    half = x.shape[-1] // 2
    x1, x2 = x[:, :half], x[:, half:]
    return np.concatenate((x1 * cos - x2 * sin, x2 * cos + x1 * sin), axis=-1)


class Decoder:
    """One-token-at-a-time generation for a batch of one, with as little work per step as we
    could measure: weights gathered once in their fastest layout, the cache written in place,
    no module calls. Computes what `GPT.forward_cached` computes (to float rounding; a test
    checks identical greedy ids with and without the cache).

    fp32 steps run on numpy vectors: the one-row products through numpy's BLAS (see
    `_numpy_blas_on`), norms and GELU still through torch's kernels, attention over the cache
    as two small batched products. Other dtypes, or when numpy's BLAS thread count cannot be
    matched to torch's, step through torch (prepacked oneDNN weights for bf16).

    Reads the model, never changes it; each generation makes its own Decoder (its own cache),
    while the prepared weight copies are shared between generations of an unchanged model.
    """

    def __init__(self, model, max_len: int | None = None):
        cfg = model.config
        self.config = cfg
        self.max_len = max_len or cfg.context_length
        dtype = model.tok_emb.weight.dtype
        device = model.tok_emb.weight.device
        self.cache = KVCache(cfg, 1, self.max_len, dtype, device)
        self.tok = model.tok_emb.weight  # (V, C)
        enc = cfg.pos_encoding
        self.pos_table = (
            model.pos_emb.weight
            if enc == "learned"
            else model.pos_table
            if enc == "sinusoidal"
            else None
        )
        self.rope = (model.rope_cos, model.rope_sin) if enc == "rope" else None
        self.pre = cfg.norm_position == "pre"
        self.model = model
        self.H, self.D, self.C = cfg.n_heads, cfg.head_dim, cfg.d_model
        mlp = model.blocks[0].mlp
        if cfg.activation == "gelu":
            self.act = partial(F.gelu, approximate="tanh")
        elif cfg.activation == "relu":
            self.act = torch.relu
        else:
            self.act = lambda h: mlp.act(h)[1]
        self.numpy = (
            dtype == torch.float32
            and device.type == "cpu"
            and _numpy_blas_on(torch.get_num_threads())
        )
        if self.numpy:
            self._init_numpy(model)
            return
        self.layers, self.ln_f, self.head = _prepared(model)
        kv = self.cache.kv  # per-layer views made once: (2, 1, H, Tmax, D), k and v (1, H, Tmax, D)
        self.views = [(kv[i], kv[i, 0], kv[i, 1]) for i in range(cfg.n_layers)]

    def _init_numpy(self, model) -> None:
        self.np_layers, self.np_head = _prepared(model, "numpy")
        self.np_norms = [(_numpy_norm(b.ln1), _numpy_norm(b.ln2)) for b in model.blocks]
        self.np_ln_f = _numpy_norm(model.ln_f)
        kv = self.cache.kv.numpy()  # shares memory with the torch cache the prefill fills
        self.np_views = [kv[i, :, 0] for i in range(self.config.n_layers)]  # (2, H, Tmax, D)
        self.np_tok = self.tok.detach().numpy()
        self.np_pos = None if self.pos_table is None else self.pos_table.detach().numpy()
        self.np_rope = None
        if self.rope is not None:
            self.np_rope = tuple(t.detach().numpy() for t in self.rope)  # (T, D/2) each
        act = self.config.activation
        self.np_act = (lambda h: np.maximum(h, 0, out=h)) if act == "relu" else _on_numpy(self.act)
        self.scale = np.float32(1.0 / math.sqrt(self.D))

    @property
    def pos(self) -> int:
        return self.cache.pos

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Fill the cache with ids (1, T) from position 0; logits of the last position (V,)."""
        self.cache.reset()
        return self.model.forward_cached(ids, self.cache)[0]

    def step(self, token: int) -> torch.Tensor:
        """Append one token at position `pos`; its next-token logits (V,). Under inference_mode."""
        pos = self.cache.pos
        if pos >= self.max_len:
            raise ValueError(f"KV cache full: {self.max_len} positions")
        if self.numpy:
            return self._step_numpy(token, pos)
        H, D, C = self.H, self.D, self.C
        # narrow() is one dispatch; x[a:b] on several axes is one per axis
        x = self.tok.narrow(0, token, 1)  # (1, C)
        if self.pos_table is not None:
            x = x + self.pos_table.narrow(0, pos, 1)
        rope = None
        if self.rope is not None:
            rope = (self.rope[0][pos : pos + 1], self.rope[1][pos : pos + 1])  # (1, D/2)
        act, end = self.act, pos + 1
        for (ln1, qkv, out, ln2, fc, proj), (layer, keys, values) in zip(self.layers, self.views):
            h = ln1(x) if self.pre else x
            new = qkv(h).view(3, 1, H, 1, D)  # q, k, v each (1, H, 1, D)
            q = new[0]
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(new[1], *rope)
                new = torch.stack((q, k, new[2]))
            layer.narrow(3, pos, 1).copy_(new[1:])  # k and v into (2, 1, H, Tmax, D)
            # 4-D inputs: SDPA's 3-D case falls back to a slower path (measured 2x per call)
            z = F.scaled_dot_product_attention(q, keys.narrow(2, 0, end), values.narrow(2, 0, end))
            a = out(z.view(1, C))  # (1, H, 1, D) -> (1, C)
            if self.pre:
                x = x + a
                x = x + proj(act(fc(ln2(x))))
            else:
                x = ln1(x + a)
                x = ln2(x + proj(act(fc(x))))
        self.cache.pos = end
        return self.head(self.ln_f(x))[0]  # (V,)

    def _step_numpy(self, token: int, pos: int) -> torch.Tensor:
        """`step` on numpy (C,) vectors; the same arithmetic as the torch path."""
        H, D, C, end, pre, act = self.H, self.D, self.C, pos + 1, self.pre, self.np_act
        x = (
            self.np_tok[token] + self.np_pos[pos]
            if self.np_pos is not None
            else self.np_tok[token].copy()
        )
        rope = None if self.np_rope is None else (self.np_rope[0][pos], self.np_rope[1][pos])
        for ((wqkv, bqkv), (wo, bo), (wfc, bfc), (wpr, bpr)), (ln1, ln2), kv in zip(
            self.np_layers, self.np_norms, self.np_views
        ):
            new = (ln1(x) if pre else x) @ wqkv  # (3C,)
            if bqkv is not None:
                new += bqkv
            new = new.reshape(3, H, D)
            q = new[0]
            if rope is None:
                kv[:, :, pos] = new[1:]  # k and v into (2, H, Tmax, D)
            else:
                q = _numpy_rope(q, *rope)
                kv[0, :, pos] = _numpy_rope(new[1], *rope)
                kv[1, :, pos] = new[2]
            s = np.matmul(q[:, None, :] * self.scale, kv[0, :, :end].transpose(0, 2, 1))
            p = torch.softmax(torch.from_numpy(s), -1).numpy()  # (H, 1, end): one fused call
            z = np.matmul(p, kv[1, :, :end])  # (H, 1, D)
            a = z.reshape(C) @ wo
            if bo is not None:
                a += bo
            if pre:
                x += a
                f = ln2(x) @ wfc
            else:
                x = ln1(x + a)
                f = x @ wfc
            if bfc is not None:
                f += bfc
            m = act(f) @ wpr
            if bpr is not None:
                m += bpr
            if pre:
                x += m
            else:
                x = ln2(x + m)
        self.cache.pos = end
        return torch.from_numpy(self.np_ln_f(x) @ self.np_head)  # (V,)
