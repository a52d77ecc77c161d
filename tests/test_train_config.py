"""TrainConfig: derived sizes asserted, unknown keys fail by name, the schedule is pure."""

import math

import pytest

from core.train import build_parser
from core.train_config import TrainConfig, TrainConfigError, geometric_steps, lr_at


def test_grad_accum_is_derived_from_the_global_batch():
    cfg = TrainConfig(batch_size=16, micro_batch_size=4)
    assert cfg.grad_accum_steps(world_size=1) == 4
    assert cfg.grad_accum_steps(world_size=2) == 2
    assert TrainConfig(batch_size=8).grad_accum_steps(world_size=2) == 1  # micro = 8 / 2


def test_indivisible_global_batch_fails_naming_the_fields():
    with pytest.raises(TrainConfigError, match="batch_size=10.*micro_batch_size=4"):
        TrainConfig(batch_size=10, micro_batch_size=4).grad_accum_steps(1)


def test_unknown_key_fails_by_name():
    with pytest.raises(TrainConfigError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    assert TrainConfig.from_dict(TrainConfig(lr=0.5).to_dict()).lr == 0.5


@pytest.mark.parametrize(
    "field, value", [("dtype", "fp16"), ("max_steps", 0), ("val_fraction", 1.5), ("lr", -1.0)]
)
def test_invalid_values_name_the_field(field, value):
    with pytest.raises(TrainConfigError, match=field):
        TrainConfig(**{field: value})


def test_schedule_warmup_then_cosine_to_floor():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[9] == pytest.approx(1.0)  # end of warm-up = peak
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))  # rising
    assert all(a >= b for a, b in zip(lrs[10:109], lrs[11:110]))  # falling
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[110] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)
    assert lr_at(50, cfg) == lr_at(50, cfg)  # pure: no hidden state


def test_geometric_frames_are_dense_early():
    steps = geometric_steps(1000, 12)
    assert steps[0] == 0 and steps[-1] == 1000
    assert steps == sorted(set(steps))
    assert steps[3] < 50  # early frames are close together


def test_cli_unknown_option_fails_by_name(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--learning-rate", "3"])
    assert "--learning-rate" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no prefix matching: a typo is not silently completed
        parser.parse_args(["--out", "x", "--max-step", "3"])


def test_cli_fields_map_to_configs():
    from core.train import configs_from_args

    args = build_parser().parse_args(
        ["--out", "x", "--preset", "tiny", "--n-layers", "3", "--lr", "0.01", "--dtype", "bf16"]
        + ["--micro-batch-size", "none", "--timelapse-steps", "0,5,10", "--bias", "false"]
    )
    m, t = configs_from_args(args)
    assert (m.n_layers, m.bias, t.lr, t.dtype) == (3, False, 0.01, "bf16")
    assert t.micro_batch_size is None and t.timelapse_steps == [0, 5, 10]
