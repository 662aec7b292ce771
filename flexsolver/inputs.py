"""User inputs for the command and the interactive page: the solver to run, contents downscaled to
what memory holds, region masks fitted to them, and one-line warnings on stderr.

The memory budget per content pixel is measured by ``benchmarks/peak_memory.py`` (numbers in
``docs/DESIGN.md``).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

DEFAULT_MAX_SIDE = 1024
BYTES_PER_PIXEL = 1400  # peak memory of one stylisation per content pixel, with a margin (DESIGN.md)
BYTES_PER_PIXEL_PHOTO = 1600  # with the photo prox: a margin for the float64 Laplacian build
MEMORY_HEADROOM = 0.7  # use at most this share of the available memory


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def load_solver(checkpoint: str | None, random: bool = False):
    """:func:`flexsolver.checkpoint.load_solver`, warning on stderr when it falls back."""
    from flexsolver.checkpoint import load_solver as load

    return load(checkpoint, random, on_fallback=warn)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``; physical memory if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_max_side(shape: tuple[int, int], photo: bool, memory: int | None = None) -> int:
    """The longest side that keeps an image of aspect ``shape = (H, W)`` within
    ``MEMORY_HEADROOM`` of the available memory (``memory`` bytes, default measured now)."""
    memory = available_memory() if memory is None else memory
    per_pixel = BYTES_PER_PIXEL_PHOTO if photo else BYTES_PER_PIXEL
    max_pixels = MEMORY_HEADROOM * memory / per_pixel
    h, w = shape
    return max(64, int(max(h, w) * math.sqrt(max_pixels / (h * w))))


def read_content(path, max_side: int, photo: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """A content image, downscaled (with a warning) to ``max_side`` (0: none) and to what memory
    holds, and its ``(H, W)`` as stored."""
    from flexsolver import images

    x = images.load_image(path)
    h, w = x.shape[:2]
    limit = max_side if max_side > 0 else max(h, w)
    cap = memory_max_side((h, w), photo)
    if cap < limit:
        warn(f"{path} at {w}×{h} would need more memory than available; limiting the longest side to {cap}")
        limit = cap
    if max(h, w) > limit:
        x = images.resize_max_side(x, limit)
        warn(f"{path}: {w}×{h} downscaled to {x.shape[1]}×{x.shape[0]} (--max-side {limit}; --max-side 0 keeps "
             "the full size if memory allows)")
    return x, (h, w)


def read_mask(path) -> np.ndarray:
    """A mask image as ``(H, W)`` in [0,1] (its luminance)."""
    from flexsolver import images

    if not Path(path).is_file():
        raise FileNotFoundError(f"mask {path} does not exist")
    return images.load_image(path).mean(axis=-1)


def fit_mask(path, m: np.ndarray, content_size: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Mask ``m`` (read from ``path``), which must be as large as the content file, resized to ``shape``."""
    from flexsolver import images

    if m.shape != content_size:
        raise ValueError(f"mask {path} is {m.shape[1]}×{m.shape[0]} but the content is "
                         f"{content_size[1]}×{content_size[0]}; masks must have the content's size")
    return np.clip(images.resize(m, shape), 0.0, 1.0)
