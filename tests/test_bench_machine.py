"""The benchmarks' processor description (tests/bench/machine.py) reads /proc/cpuinfo."""

from tests.bench.machine import describe_cpu

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu avx2 avx512f avx512_bf16 sha_ni

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: not the first block
flags\t\t: amx_bf16
"""


def test_first_processor_block_and_relevant_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    d = describe_cpu(str(path))
    assert (d["vendor"], d["family"], d["model"], d["stepping"]) == (
        "AuthenticAMD",
        "25",
        "17",
        "1",
    )
    assert d["model_name"] == "AMD EPYC"
    assert d["isa"] == ["avx2", "avx512f", "avx512_bf16"]  # amx_bf16 is the second block's


def test_without_cpuinfo_still_reports_what_torch_knows(tmp_path):
    d = describe_cpu(str(tmp_path / "absent"))
    assert d["cpu_count"] and d["torch_cpu_capability"]
    assert "model_name" not in d and "isa" not in d
