"""Shared fixtures: a tiny model config and a seeded tiny GPT, one torch thread per test process.

The CPU is shared by many test processes and engineers, so torch runs single-threaded here
(tests that measure speed live in tests/bench/ and are never collected).
"""

import pytest
import torch

from core.config import preset
from core.model import GPT

torch.set_num_threads(1)

# benchmarks print JSON and are run by hand: `python tests/bench/bench_x.py`
collect_ignore_glob = ["bench/*"]


@pytest.fixture
def reg():
    """A private job registry (one training at a time); every job thread must end with the test."""
    from explorer.jobs import JobRegistry

    r = JobRegistry(max_concurrent=1)
    yield r
    assert r.stop_all(timeout=60), "a test left a job thread running"


@pytest.fixture
def tiny_config():
    """2 layers, 4 heads, C=32, T=32, V=128: a GPT that runs in milliseconds."""
    return preset("tiny")


@pytest.fixture
def tiny_model(tiny_config):
    """A seeded, randomly initialised tiny GPT in eval mode."""
    torch.manual_seed(0)
    return GPT(tiny_config).eval()


@pytest.fixture
def tiny_ids(tiny_config):
    """A (2, 16) batch of token ids, fixed by a local generator."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, tiny_config.vocab_size, (2, 16), generator=g)


@pytest.fixture
def no_tf32():
    """Full-precision fp32 matmuls on a GPU (the CUDA tests use it); the previous setting restored."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
