"""Where the files installed with the package are: example images and the shipped solver
checkpoint. Paths only; this module imports nothing from flexsolver."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).parent
EXAMPLES = PACKAGE / "examples"
MODELS = PACKAGE / "models"
DEFAULT_MODEL = "mix256"  # see the model card in README.md


def example(name: str) -> Path:
    """Path of a shipped example image (see ``examples/LICENSES.md``)."""
    path = EXAMPLES / name
    if not path.is_file():
        choices = sorted(p.name for p in EXAMPLES.iterdir() if p.suffix == ".jpg")
        raise FileNotFoundError(f"no example image {name!r}; shipped: {', '.join(choices)}")
    return path


def shipped_checkpoint(name: str = DEFAULT_MODEL) -> Path:
    """Folder of a solver checkpoint shipped in the package. Only the path: ``load_checkpoint``
    reads it, and raises ``CheckpointError`` when it holds no checkpoint."""
    return MODELS / name
