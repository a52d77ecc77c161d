"""Which processor a benchmark ran on, for its JSON: figures from two machines of one "kind"
are not comparable (a 2-core AMD EPYC of family 25, model 17 measured a bf16 matmul peak of
375-420 GFLOP/s here, where the field notes had measured 840 on the same kind of machine).

Read from /proc/cpuinfo (Linux); elsewhere only what Python and torch know.
"""

from __future__ import annotations

import os
import platform

import torch

# ISA features the CPU training and inference paths can use: bf16 dot products (AVX-512 BF16)
# and AMX tiles decide the bf16 matmul peak
_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def describe_cpu(path: str = "/proc/cpuinfo") -> dict:
    """{model name, vendor, family, model, stepping, relevant ISA flags, torch's capability}."""
    out: dict = {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return out
    for key, name in (("model name", "model_name"), ("vendor_id", "vendor"),
                      ("cpu family", "family"), ("model", "model"), ("stepping", "stepping")):  # fmt: skip
        if key in fields:
            out[name] = fields[key]
    flags = set(fields.get("flags", "").split())
    out["isa"] = [f for f in _FLAGS if f in flags]
    return out
