"""Colour conversions between RGB and YCbCr (BT.601 full range, JPEG/JFIF), on JAX arrays.

Images are channel-last, values in [0, 1]; Y is in [0, 1] and the chroma Cb, Cr are centred on
0.5. Super-resolution works on Y alone, and colour-preserving transfer recombines a stylised Y
with the content's CbCr.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "luminance"]

# BT.601 full range (JPEG/JFIF), for values in [0, 1]: chroma centred on 0.5.
_RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    np.float64,
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
_CHROMA_OFFSET = np.array([0.0, 0.5, 0.5])


def rgb_to_ycbcr(x) -> jax.Array:
    """RGB in [0,1], ``(…,3)`` → YCbCr, BT.601 full range (Y in [0,1], Cb/Cr centred on 0.5)."""
    x = jnp.asarray(x, jnp.float32)
    m = jnp.asarray(_RGB_TO_YCBCR, jnp.float32)
    return x @ m.T + jnp.asarray(_CHROMA_OFFSET, jnp.float32)


def ycbcr_to_rgb(x) -> jax.Array:
    """Inverse of :func:`rgb_to_ycbcr` (no clipping)."""
    x = jnp.asarray(x, jnp.float32) - jnp.asarray(_CHROMA_OFFSET, jnp.float32)
    return x @ jnp.asarray(_YCBCR_TO_RGB, jnp.float32).T


def luminance(x) -> jax.Array:
    """The Y channel ``(…,H,W)`` of an RGB image ``(…,H,W,3)``."""
    return rgb_to_ycbcr(x)[..., 0]
