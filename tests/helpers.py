"""Helpers shared by the tests (fixtures stay in conftest.py). Test images come from
scikit-image's bundled sample data (a dev dependency), never from the repository or ../shared."""

from __future__ import annotations

import numpy as np

from flexsolver.timing import count_compilations  # noqa: F401  (public compile counting, jax.monitoring)


def sample_image(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A scikit-image sample as float32 ``(H,W,3)`` in [0,1], optionally resized to (H, W)."""
    import skimage.data
    from PIL import Image

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    pil = Image.fromarray(img[..., :3])
    if size is not None:
        pil = pil.resize((size[1], size[0]), Image.LANCZOS)
    return np.asarray(pil, np.float32) / 255.0
