"""Small helpers shared by the experiment scripts: image pairs, the solver to run, one-line CLI errors."""

from __future__ import annotations

import contextlib
import sys

import jax

import flexsolver as fs
from flexsolver.checkpoint import CheckpointError, load_checkpoint
from flexsolver.images import ImageError, load_image
from flexsolver.vgg import WeightsError


def load_pair(content: str, style: str, size: int):
    """Content and style as float32 ``(H,W,3)`` in [0,1], longest side at most ``size``."""
    return load_image(content, max_side=size), load_image(style, max_side=size)


@contextlib.contextmanager
def cli_errors():
    """Turns expected user errors into one line on stderr and exit code 2."""
    try:
        yield
    except (ImageError, WeightsError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def load_solver(checkpoint: str | None, random: bool):
    """(params, nonlinearity, description) from a checkpoint, the shipped one, or random."""
    if not random:
        try:
            params, config = load_checkpoint(checkpoint)
            return params, config.get("nonlinearity", "heaviside"), f"checkpoint n={config['n']} l={config['l']}"
        except CheckpointError as e:
            if checkpoint is not None:
                raise
            print(f"warning: {e}; using random parameters", file=sys.stderr)
    return fs.init_params(jax.random.PRNGKey(0), n=4, l=32), "heaviside", "random parameters"
