"""The 3×3 convolution every network here is made of (VGG-19, the solver, AdaIN's decoder).

``conv3x3(x, w, b, padding)``: stride 1, output the size of the input, reflection or zero
padding, NHWC activations and HWIO kernels.

Two lowerings compute the same function, chosen per platform when the program is lowered
(``lax.platform_dependent``), so one jitted function stays portable:

* **CPU**: XLA's CPU backend runs a ``"VALID"`` convolution several times slower than a
  ``"SAME"`` one of the same size, and its weight gradient slower still. So the forward pass
  reflect-pads, convolves with ``"SAME"`` and crops the 1-pixel border (the same sums, in the
  same order, as the ``"VALID"`` form), and a custom VJP computes
  the input gradient as a ``"SAME"`` convolution of the cotangent with the flipped,
  transposed kernel (then the adjoint of the padding), and
  the weight gradient as nine ``(C_in × BHW)·(BHW × C_out)`` matrix products, one per tap
  (for fewer than :data:`THIN` output channels, XLA's own weight gradient, faster there).
* **GPU/TPU** (and anything else): ``lax.conv_general_dilated`` with its own autodiff.

Reverse mode (``grad``, ``vjp``, also nested) works on every platform; forward mode (``jvp``)
does not, as for any ``custom_vjp``. ``docs/DESIGN.md`` has the measurements behind these choices (``benchmarks/conv_speed.py``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

_DN = ("NHWC", "HWIO", "NHWC")
PADDINGS = ("reflect", "zero")
THIN = 8  # below this many output channels the CPU weight gradient uses XLA's own (measured)


def _check(x: jax.Array, w: jax.Array, padding: str) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if x.ndim != 4 or w.shape[:2] != (3, 3) or w.ndim != 4 or x.shape[-1] != w.shape[2]:
        raise ValueError(f"conv3x3 needs x (B,H,W,C_in) and w (3,3,C_in,C_out), got {x.shape} and {w.shape}")


def _pad1(x: jax.Array, padding: str) -> jax.Array:
    mode = "reflect" if padding == "reflect" else "constant"
    return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=mode)


def _conv_same(x: jax.Array, w: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_DN)


def conv3x3_reference(x: jax.Array, w: jax.Array, padding: str = "reflect") -> jax.Array:
    """Pad, then a ``"VALID"`` ``lax.conv`` (JAX's own autodiff): the portable form."""
    if padding == "zero":
        return _conv_same(x, w)
    return jax.lax.conv_general_dilated(_pad1(x, padding), w, (1, 1), "VALID", dimension_numbers=_DN)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3x3_cpu(x: jax.Array, w: jax.Array, padding: str) -> jax.Array:
    if padding == "zero":
        return _conv_same(x, w)
    return _conv_same(_pad1(x, padding), w)[:, 1:-1, 1:-1]


def _cpu_fwd(x, w, padding):
    return _conv3x3_cpu(x, w, padding), (x, w)


def _cpu_bwd(padding, residuals, dy):
    x, w = residuals
    _, h, wd, _ = x.shape
    w_t = jnp.flip(w, (0, 1)).swapaxes(2, 3)  # (3,3,C_out,C_in): the adjoint's kernel
    if padding == "zero":
        dx = _conv_same(dy, w_t)
    else:
        # Gradient with respect to the padded input (a "full" correlation, written as SAME on a
        # zero-padded cotangent), then the adjoint of the reflection padding.
        dxp = _conv_same(jnp.pad(dy, ((0, 0), (1, 1), (1, 1), (0, 0))), w_t)
        _, pad_vjp = jax.vjp(lambda a: _pad1(a, padding), x)
        (dx,) = pad_vjp(dxp)
    xp = _pad1(x, padding)
    if dy.shape[-1] < THIN:
        # A thin output (the solver's last convs, to 3 channels): XLA's own weight gradient of
        # the VALID convolution is several times faster here than nine thin matrix products.
        _, w_vjp = jax.vjp(lambda k: jax.lax.conv_general_dilated(xp, k, (1, 1), "VALID", dimension_numbers=_DN), w)
        (dw,) = w_vjp(dy)
        return dx.astype(x.dtype), dw.astype(w.dtype)
    dy2 = dy.reshape(-1, dy.shape[-1])
    taps = [
        xp[:, i : i + h, j : j + wd].reshape(-1, x.shape[-1]).T @ dy2
        for i in range(3)
        for j in range(3)
    ]
    dw = jnp.stack(taps).reshape(w.shape).astype(w.dtype)
    return dx.astype(x.dtype), dw


_conv3x3_cpu.defvjp(_cpu_fwd, _cpu_bwd)


def conv3x3(x: jax.Array, w: jax.Array, b: jax.Array | None = None, padding: str = "reflect") -> jax.Array:
    """3×3 convolution, stride 1, same size.

    Args:
      x: ``(B,H,W,C_in)``.
      w: ``(3,3,C_in,C_out)``.
      b: ``(C_out,)`` or ``None``.
      padding: ``"reflect"`` (needs ``H, W ≥ 2``) or ``"zero"``.
    Returns:
      ``(B,H,W,C_out)``.
    """
    _check(x, w, padding)
    y = jax.lax.platform_dependent(
        x, w,
        cpu=lambda x, w: _conv3x3_cpu(x, w, padding),
        default=lambda x, w: conv3x3_reference(x, w, padding),
    )
    return y if b is None else y + b
