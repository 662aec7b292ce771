"""experiments.ablation: one tiny run end to end, resumable, and its argument checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from experiments import ablation
from tests.helpers import sample_image


def test_parse_runs():
    assert ablation.parse_runs("1:heaviside, 4:relu") == [(1, "heaviside"), (4, "relu")]
    for bad in ("0:relu", "4:tanh", "x:relu", "4"):
        with pytest.raises(ValueError, match="bad run"):
            ablation.parse_runs(bad)


def test_parse_seeds():
    assert ablation.parse_seeds("0, 3") == [0, 3]
    for bad in ("", "0,0", "-1", "a"):
        with pytest.raises(ValueError, match="bad --seeds"):
            ablation.parse_seeds(bad)


def test_pooled_equals_the_statistics_of_all_pairs():
    rng = np.random.default_rng(0)
    per_seed = [rng.gamma(2.0, 0.5, size=16) for _ in range(3)]
    records = [{"val_ltv": float(v.mean()), "val_ltv_std": float(v.std())} for v in per_seed]
    mean, std = ablation.pooled(records)
    everything = np.concatenate(per_seed)
    np.testing.assert_allclose([mean, std], [everything.mean(), everything.std()], rtol=1e-12)


@pytest.mark.slow
def test_tiny_ablation_end_to_end_and_resume(tmp_path, capsys):
    data = tmp_path / "photos"
    data.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray((sample_image(name, (48, 48)) * 255).astype(np.uint8)).save(data / f"{name}.png")
    argv = ["--runs", "1:heaviside", "--seeds", "0", "--steps", "2", "--size", "32", "--batch", "2", "--l", "4",
            "--eval-pairs", "2", "--data", str(data), "--workdir", str(tmp_path / "runs"), "-o", str(tmp_path / "out")]
    ablation.main(argv)
    text = (tmp_path / "out" / "ablation.md").read_text()
    [run] = [p for p in (tmp_path / "runs").glob("n1_heaviside_*_seed0") if p.is_dir()]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_ltv" in r][-1]
    assert json.loads((run / "config.json").read_text())["val_seed"] == 0
    assert val["step"] == 2 and f"{val['val_ltv']:.3f} ± {val['val_ltv_std']:.3f}" in text
    assert Image.open(tmp_path / "out" / "ablation.png").size[1] == 32 + 8
    capsys.readouterr()
    ablation.main(argv)  # finished runs are read back, not retrained
    assert "training N=" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        ablation.main([*argv[:-2], "--data", str(tmp_path / "missing")])
    assert e.value.code == 2
