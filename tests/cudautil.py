"""Shared pieces of the CUDA tests (tests/test_cuda.py, tests/test_cuda_runs.py): the skip,
tolerances and small helpers (the no_tf32 fixture is in tests/conftest.py)."""

import copy

import pytest
import torch

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU (torch.cuda.is_available() is False)"
)

TOL = 1e-4  # fp32 GPU vs CPU, relative to the largest value: different summation orders only
LOW = 3e-2  # bf16 (8 significant bits) against an fp32 reference, same measure


def rel_err(a, b) -> float:
    """max |a - b| / max |b|, on the CPU in fp32: one number for tensors of any scale."""
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def on_cuda(model):
    """A copy of `model` on the GPU (tied weights stay tied); the CPU original is untouched."""
    return copy.deepcopy(model).cuda()


def batch(V=128, B=3, T=32, seed=1):
    """ids and targets (B, T) on the CPU; a few targets ignored (-100)."""
    g = torch.Generator().manual_seed(seed)
    ids, tgt = torch.randint(0, V, (2, B, T), generator=g)
    tgt[0, :5] = -100
    return ids, tgt
