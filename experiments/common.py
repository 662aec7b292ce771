"""Small helpers shared by the experiment scripts: image pairs, the solver to run, one-line CLI errors.

``cli_errors`` (:mod:`flexsolver.cli`) and ``load_solver`` (:mod:`flexsolver.inputs`) are the
installed command's own, re-exported here.
"""

from __future__ import annotations

from flexsolver.cli import cli_errors
from flexsolver.inputs import load_solver
from flexsolver.images import load_image

__all__ = ["cli_errors", "load_pair", "load_solver"]


def load_pair(content: str, style: str, size: int):
    """Content and style as float32 ``(H,W,3)`` in [0,1], longest side at most ``size``."""
    return load_image(content, max_side=size), load_image(style, max_side=size)
