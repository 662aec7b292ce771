"""End-to-end: ``python -m experiments.photo`` on tiny images (random solver parameters)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from experiments import photo
from tests.conftest import sample_image

PAD = 4  # image_grid's default padding


def _save(tmp_path, name, size):
    path = tmp_path / f"{name}.png"
    Image.fromarray((sample_image(name, size) * 255).round().astype(np.uint8)).save(path)
    return path


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
    # the prox output is in [0,1] by construction and differs from the plain output
    x0 = PAD + 40 + PAD + 48 + PAD
    plain = grid[PAD : PAD + 48, x0 : x0 + 40].astype(float)
    with_prox = grid[PAD : PAD + 48, x0 + 40 + PAD : x0 + 80 + PAD].astype(float)
    assert np.abs(plain - with_prox).mean() > 0.5


def test_photo_missing_content(tmp_path, capsys):
    style = _save(tmp_path, "coffee", (40, 48))
    out = tmp_path / "out.png"
    with pytest.raises(SystemExit) as e:
        photo.main(["--content", str(tmp_path / "nope.png"), "--style", str(style), "-o", str(out), "--size", "48", "--random"])
    assert e.value.code == 2
    assert not out.exists()
    assert "error" in capsys.readouterr().err
