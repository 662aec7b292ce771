"""User-guided texture super-resolution ×3 (SPEC §4.3): the degradation ``D``, its adjoint, the
data-term prox, the bicubic start and the luminance pipeline (YCbCr from :mod:`flexsolver.color`).

**Layouts.** Every function here takes channel-last images: ``(H,W)`` (one plane), ``(H,W,C)``
or ``(B,H,W,C)``; ``D`` acts on every plane (each batch element and channel) independently.
For the luminance pipeline the planes are the Y channel (``C = 1``), or the Y channel
replicated three times (``C = 3``: what the solver and VGG see).

**The degradation** ``D = S ∘ G``: ``G`` is the 17×17 Gaussian blur, σ = 3, normalised to sum 1
(so a constant image stays the same constant), separable, with reflect padding of 8 pixels
(``jnp.pad(mode="reflect")``, the edge pixel not repeated); ``S`` keeps one pixel in three in
each direction, at offsets ``1, 4, 7, …`` (the centre of each 3×3 block), so ``H = 3h`` gives
``h`` rows, aligned with the half-pixel convention of :func:`bicubic_upsample`
(``jax.image.resize``). In general ``h = (H + 1) // 3``.

**The adjoint** ``Dᵀ`` is ``jax.linear_transpose`` of ``D`` (exact by construction: it includes
the transpose of the reflect padding, which folds the border weights back in).

**The prox** of ``R(X) = λ Σ_planes ‖x_low − D X‖²`` is
``X = argmin ½‖X − Y‖² + R(X)``, i.e. ``(I + 2λDᵀD) X = Y + 2λDᵀx_low`` plane by plane, solved
by conjugate gradient (``jax.scipy.sparse.linalg.cg``) from ``X = Y`` until
``‖residual‖ ≤ tol·‖right-hand side‖`` (relative, joint over all planes; default ``tol = 1e-5``,
at most ``maxiter = 100`` iterations; the system is well conditioned, κ ≤ 1 + 2λ‖D‖²; the
iteration counts measured are in docs/DESIGN.md).

**Three channels.** The solver works on RGB-shaped images, so the luminance is replicated into
three channels. We use the prox of ``ι_grey(X) + R(X)``, where ``ι_grey`` is the indicator of
images with three equal channels: for ``X = m·(1,1,1)``,
``½‖X − Y‖² + λΣ_c‖x_low − D m‖² = 3·(½‖m − mean_c Y‖² + λ‖x_low − D m‖²) + const``,
so this prox is exactly ``grey_projection`` (channel mean, replicated) followed by
``superres_prox`` — :func:`luminance_superres_prox` composes the two.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from flexsolver.color import rgb_to_ycbcr, ycbcr_to_rgb
from flexsolver.prox import compose

FACTOR = 3
KERNEL_SIZE = 17
SIGMA = 3.0
OFFSET = 1  # kept pixels 1, 4, 7, …: the centres of the 3×3 blocks


def gaussian_kernel_1d(size: int = KERNEL_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian (sum 1); the 2-D kernel is its outer product."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def low_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """Spatial size of ``D X`` for ``X`` of spatial size ``shape = (H, W)``."""
    return tuple(math.ceil((n - OFFSET) / FACTOR) for n in shape)


def _as_planes(x: jax.Array) -> tuple[jax.Array, callable]:
    """``(H,W)``, ``(H,W,C)`` or ``(B,H,W,C)`` → ``(N,H,W,1)`` planes, and the inverse map."""
    if x.ndim == 2:
        return x[None, :, :, None], lambda p: p[0, :, :, 0]
    if x.ndim == 3:
        planes = jnp.moveaxis(x, -1, 0)[..., None]
        return planes, lambda p: jnp.moveaxis(p[..., 0], 0, -1)
    if x.ndim == 4:
        b, c = x.shape[0], x.shape[-1]
        planes = jnp.moveaxis(x, -1, 1).reshape(b * c, *x.shape[1:3], 1)
        return planes, lambda p: jnp.moveaxis(p[..., 0].reshape(b, c, *p.shape[1:3]), 1, -1)
    raise ValueError(f"expected (H,W), (H,W,C) or (B,H,W,C), got shape {x.shape}")


def _degrade_planes(p: jax.Array) -> jax.Array:
    """``D`` on ``(N,H,W,1)``: reflect pad, separable blur, stride 3 from offset 1."""
    r = KERNEL_SIZE // 2
    h, w = p.shape[1:3]
    if min(h, w) <= r:
        raise ValueError(f"D needs images larger than {r} pixels per side (reflect padding), got {h}×{w}")
    g = jnp.asarray(gaussian_kernel_1d(), p.dtype)
    p = jnp.pad(p, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
    p = p[:, OFFSET:, OFFSET:]
    dn = ("NHWC", "HWIO", "NHWC")
    p = jax.lax.conv_general_dilated(p, g.reshape(-1, 1, 1, 1), (FACTOR, 1), "VALID", dimension_numbers=dn)
    p = jax.lax.conv_general_dilated(p, g.reshape(1, -1, 1, 1), (1, FACTOR), "VALID", dimension_numbers=dn)
    return p


@jax.jit
def _degrade(x: jax.Array) -> jax.Array:
    planes, back = _as_planes(x)
    return back(_degrade_planes(planes))


@partial(jax.jit, static_argnums=1)
def _degrade_adjoint(y: jax.Array, full_shape: tuple[int, ...]) -> jax.Array:
    (out,) = jax.linear_transpose(_degrade, jax.ShapeDtypeStruct(full_shape, y.dtype))(y)
    return out


def degrade(x) -> jax.Array:
    """``D X``: 17×17 Gaussian blur (σ = 3, reflect padding), then keep rows/columns 1, 4, 7, ….

    ``(H,W)`` → ``(h,w)``, ``(H,W,C)`` → ``(h,w,C)``, ``(B,H,W,C)`` → ``(B,h,w,C)`` with
    ``(h, w) = low_shape((H, W))`` (``H/3`` when ``H`` is a multiple of 3).
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return _degrade(x)


def degrade_adjoint(y, shape: tuple[int, int]) -> jax.Array:
    """``Dᵀ y`` (exact, by ``jax.linear_transpose``), for high-resolution size ``shape = (H, W)``.

    ``y`` has the layout of ``degrade``'s output and spatial size ``low_shape(shape)``.
    """
    y = jnp.asarray(y)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.float32)
    shape = tuple(int(s) for s in shape)
    if y.ndim < 2 or y.ndim > 4:
        raise ValueError(f"expected (h,w), (h,w,C) or (B,h,w,C), got shape {y.shape}")
    spatial = slice(0, 2) if y.ndim <= 3 else slice(1, 3)
    if tuple(y.shape[spatial]) != low_shape(shape):
        raise ValueError(f"D maps {shape} to {low_shape(shape)}, but y is {tuple(y.shape[spatial])}")
    full = list(y.shape)
    full[spatial] = shape
    return _degrade_adjoint(y, tuple(full))


@dataclasses.dataclass(frozen=True)
class _SuperresProx:
    """Static part of the prox (hashable, equal for every ``x_low``): CG tolerance and budget."""

    tol: float
    maxiter: int

    def __call__(self, x_low, lam, y):
        y = jnp.asarray(y)
        x_low = x_low.astype(y.dtype)
        lam2 = 2.0 * lam.astype(y.dtype)
        shape = y.shape[:2] if y.ndim == 2 else y.shape[-3:-1]
        if x_low.ndim == 2 and y.ndim > 2:
            x_low = x_low[..., None]  # one plane for every channel
        low = jnp.broadcast_to(x_low, _low_full(y.shape))
        b = y + lam2 * degrade_adjoint(low, shape)

        def a(v):
            return v + lam2 * degrade_adjoint(degrade(v), shape)

        x, _ = jax.scipy.sparse.linalg.cg(a, b, x0=y, tol=self.tol, atol=0.0, maxiter=self.maxiter)
        return x


def _low_full(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The full shape of ``D Y`` for ``Y`` of ``shape`` (``x_low`` is broadcast to it)."""
    if len(shape) == 2:
        return low_shape(shape)
    return (*shape[:-3], *low_shape(shape[-3:-1]), shape[-1])


def superres_prox(x_low, lam: float = 50.0, tol: float = 1e-5, maxiter: int = 100) -> Partial:
    """``Y ↦ argmin_X ½‖X − Y‖² + λ‖x_low − D X‖²`` (per plane), by conjugate gradient.

    Solves ``(I + 2λDᵀD) X = Y + 2λDᵀx_low`` with ``jax.scipy.sparse.linalg.cg`` from ``X = Y``
    to a relative residual ``‖r‖ ≤ tol·‖rhs‖`` (at most ``maxiter`` iterations). Jit-compatible.

    Args:
      x_low: the low-resolution observation, ``(h,w)``, ``(h,w,C)`` or ``(B,h,w,C)``; it is
        broadcast against ``D Y`` (so an ``(h,w)`` or ``(h,w,1)`` luminance serves every channel
        and batch element of ``Y``).
      lam: λ_R (50 in the paper).
      tol, maxiter: CG's relative tolerance and iteration budget (static).
    Returns:
      a ``jax.tree_util.Partial`` whose leaves are ``x_low`` and λ: a new ``x_low`` of the same
      shape reuses compiled code taking this prox.
    """
    x_low = jnp.asarray(x_low, jnp.float32)
    if x_low.ndim not in (2, 3, 4):
        raise ValueError(f"x_low must be (h,w), (h,w,C) or (B,h,w,C), got shape {x_low.shape}")
    if lam < 0 or tol <= 0 or maxiter < 1:
        raise ValueError(f"need lam >= 0, tol > 0, maxiter >= 1; got {lam}, {tol}, {maxiter}")
    return Partial(_SuperresProx(float(tol), int(maxiter)), x_low, jnp.asarray(lam, jnp.float32))


def _grey(y):
    return jnp.broadcast_to(jnp.mean(y, axis=-1, keepdims=True), y.shape)


grey_projection = Partial(_grey)
"""Projection onto images with equal channels (channel mean, replicated): prox of ``ι_grey``."""


def luminance_superres_prox(x_low, lam: float = 50.0, tol: float = 1e-5, maxiter: int = 100) -> Partial:
    """Prox of ``ι_grey + λ Σ_c ‖x_low − D X_c‖²`` for the Y channel replicated into 3 channels:
    exactly ``superres_prox(x_low, λ)(grey_projection(Y))`` (see the module docstring)."""
    return compose(grey_projection, superres_prox(x_low, lam, tol, maxiter))


def bicubic_upsample(x, factor: int = FACTOR) -> jax.Array:
    """×``factor`` bicubic upsampling (Keys, a = −0.5; ``jax.image.resize``, half-pixel centres,
    which matches ``D``'s offset-1 sampling). Layouts as :func:`degrade`; no clipping."""
    x = jnp.asarray(x, jnp.float32)
    if x.ndim == 2:
        shape = (x.shape[0] * factor, x.shape[1] * factor)
    elif x.ndim in (3, 4):
        shape = (*x.shape[:-3], x.shape[-3] * factor, x.shape[-2] * factor, x.shape[-1])
    else:
        raise ValueError(f"expected (h,w), (h,w,C) or (B,h,w,C), got shape {x.shape}")
    return jax.image.resize(x, shape, method="cubic")


GUIDED_WEIGHTS = {"conv1_1": 1.0, "conv2_1": 1.0, "conv3_1": 1.0, "conv4_1": 1.0, "conv5_1": 0.0}
"""Style weights of guided super-resolution: all scales but the coarsest (a texture guide has no
meaningful layout at conv5_1's receptive field)."""


def superresolve_luminance(params, y_low, guide_grams, *, lam: float = 50.0, guided: bool = True,
                           nonlinearity: str | None = None) -> jax.Array:
    """×3 super-resolution of a luminance ``y_low`` ``(h,w)`` → ``(3h,3w)`` (not clipped).

    Starts from the bicubic upsampling and runs the solver with
    :func:`luminance_superres_prox` (``λ = lam``); ``guide_grams`` are the Grams of the user's
    guide ``X_ref`` (its Y replicated to 3 channels). ``guided=False`` switches every style
    weight off, leaving the data term alone (the unguided baseline).
    """
    from flexsolver.solver import solve
    from flexsolver.vgg import STYLE_LAYERS

    y_low = jnp.asarray(y_low, jnp.float32)
    x_c = jnp.repeat(bicubic_upsample(y_low)[..., None], 3, axis=-1)
    weights = GUIDED_WEIGHTS if guided else {name: 0.0 for name in STYLE_LAYERS}
    prox = luminance_superres_prox(y_low, lam)
    out = solve(params, x_c, guide_grams, prox=prox, style_weights=weights, nonlinearity=nonlinearity)
    return jnp.mean(out, axis=-1)


def superresolve(params, vgg, x_low, guide=None, *, lam: float = 50.0, nonlinearity: str | None = None) -> np.ndarray:
    """×3 super-resolution of an RGB image ``(h,w,3)`` → ``(3h,3w,3)`` in [0,1] (SPEC §4.3).

    The luminance goes through :func:`superresolve_luminance`, guided by the texture ``guide``
    (an RGB image; ``None``: unguided); the chroma is upsampled bicubically.
    """
    from flexsolver.losses import style_grams

    ycc_low = rgb_to_ycbcr(x_low)
    ref = ycc_low if guide is None else rgb_to_ycbcr(guide)
    grams = style_grams(vgg, jnp.repeat(jnp.clip(ref[..., :1], 0, 1), 3, axis=-1))
    y = superresolve_luminance(params, ycc_low[..., 0], grams, lam=lam, guided=guide is not None,
                               nonlinearity=nonlinearity)
    chroma = bicubic_upsample(ycc_low[..., 1:])
    return np.clip(np.asarray(ycbcr_to_rgb(jnp.concatenate([y[..., None], chroma], axis=-1))), 0.0, 1.0)
