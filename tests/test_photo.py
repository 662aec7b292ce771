"""End-to-end: ``python -m experiments.photo`` on tiny images (random solver parameters)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import flexsolver as fs
from experiments import photo
from flexsolver.images import load_image
from tests.helpers import sample_image

PAD = 4  # image_grid's default padding


def _save(tmp_path, name, size):
    path = tmp_path / f"{name}.png"
    Image.fromarray((sample_image(name, size) * 255).round().astype(np.uint8)).save(path)
    return path


def matting_energy(lap, x) -> float:
    """``Σ_c ⟨x_c, ℒ x_c⟩``: how far ``x`` is from locally affine in the content's colours."""
    x = np.asarray(x, np.float32)
    return float(np.sum(x * np.asarray(lap.matvec(x))))


def test_photo_end_to_end(tmp_path, capsys):
    content = _save(tmp_path, "astronaut", (48, 40))
    style = _save(tmp_path, "coffee", (40, 48))
    out = tmp_path / "out.png"
    photo.main(["--content", str(content), "--style", str(style), "-o", str(out), "--size", "48", "--random"])
    grid = np.asarray(Image.open(out))
    # one row of four cells: content 48×40 (H×W), style 40×48, two outputs 48×40
    assert grid.shape == (48 + 2 * PAD, 40 + 48 + 40 + 40 + 5 * PAD, 3)
    printed = capsys.readouterr().out
    assert "matting prox" in printed and " s" in printed
    # the matting prox pulls the output towards the content's locally affine colour model:
    # its matting energy (ℒ of the content as photo.main loaded it) is much lower
    x0 = PAD + 40 + PAD + 48 + PAD
    plain = grid[PAD : PAD + 48, x0 : x0 + 40] / 255.0
    with_prox = grid[PAD : PAD + 48, x0 + 40 + PAD : x0 + 80 + PAD] / 255.0
    lap = fs.matting_laplacian(load_image(content, max_side=48))
    assert matting_energy(lap, with_prox) < 0.25 * matting_energy(lap, plain)  # measured: ~14× lower


def test_photo_missing_content(tmp_path, capsys):
    style = _save(tmp_path, "coffee", (40, 48))
    out = tmp_path / "out.png"
    with pytest.raises(SystemExit) as e:
        photo.main(["--content", str(tmp_path / "nope.png"), "--style", str(style), "-o", str(out), "--size", "48", "--random"])
    assert e.value.code == 2
    assert not out.exists()
    assert "error" in capsys.readouterr().err
