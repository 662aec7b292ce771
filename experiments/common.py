"""Small helpers shared by the experiment scripts: image pairs and one-line CLI errors."""

from __future__ import annotations

import contextlib
import sys

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
