"""The Colab notebook runs top to bottom here (nbclient), restoring the shipped checkpoint."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest
from PIL import Image

NOTEBOOK = Path(__file__).resolve().parents[1] / "experiments" / "colab.ipynb"


@pytest.mark.slow
def test_colab_notebook_runs_with_the_shipped_checkpoint(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("FLEXSOLVER_NOTEBOOK_SIZE", "64")
    monkeypatch.delenv("FLEXSOLVER_NOTEBOOK_CHECKPOINT", raising=False)
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "'n': 4" in text and "parameters" in text  # the shipped model was restored
    assert "no prox LTV" in text and "photo prox LTV" in text
    pngs = [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
    assert len(pngs) == 2  # the two grids were shown
    widths = [Image.open(io.BytesIO(base64.b64decode(p))).size[0] for p in pngs]
    assert widths[0] > 4 * 48 and widths[1] > 3 * 48  # 4 and 3 images of side ~64 side by side
