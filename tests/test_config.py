"""Configs as code: validation when made, flat JSON on disk (old runs too), presets, flags."""

import dataclasses
import json

import pytest

from experiments.train import parse_args
from flexsolver.config import PRESETS, ModelConfig, TrainConfig, from_json, to_json


def test_json_round_trip_and_old_flat_configs():
    config = PRESETS["mix128"]
    stored = to_json(config)
    assert stored["n"] == 4 and stored["l"] == 32 and "model" not in stored  # flat, as older runs
    assert from_json(json.loads(json.dumps(stored))) == config
    old = {"n": 4, "l": 32, "nonlinearity": "heaviside", "size": 256, "batch": 1, "steps": 200, "lr": 5e-5,
           "clip_grad_norm": 10.0, "data": "folder:x", "val_data": "", "seed": 0, "save_every": 1000, "keep": 3,
           "eval_every": 1000, "eval_pairs": 8, "log_every": 10, "init_from": "", "params_dtype": "bfloat16"}
    restored = from_json(old)  # a config.json written before val_seed, schedules and crops existed
    assert restored.model == ModelConfig(4, 32) and restored.size == 256 and restored.schedule == "constant"


@pytest.mark.parametrize("bad,match", [
    (dict(size=30), "--size"), (dict(lr=0.0), "--lr"), (dict(crop_min=1.5), "--crop-min"),
    (dict(schedule="linear"), "--schedule"), (dict(val_size=20), "--val-size"),
])
def test_invalid_values_are_one_line_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TrainConfig(), **bad)
    with pytest.raises(ValueError, match="--n and --l"):
        ModelConfig(n=0)
    with pytest.raises(ValueError, match="--nonlinearity"):
        ModelConfig(nonlinearity="tanh")


def test_flags_override_a_preset():
    config, _ = parse_args(["--n", "4", "--l", "64"])
    assert config == dataclasses.replace(PRESETS["paper"], model=ModelConfig(4, 64))
    config, args = parse_args(["--preset", "cpu128", "--lr", "1e-4", "--workdir", "w", "--init-from", "runs/cpu64"])
    assert config.model == ModelConfig(4, 32) and config.size == 128 and config.lr == 1e-4
    assert config.init_from == "runs/cpu64" and args.workdir == "w"
    with pytest.raises(SystemExit):
        parse_args(["--size", "30"])
    for name, preset in PRESETS.items():
        assert isinstance(preset, TrainConfig), name
