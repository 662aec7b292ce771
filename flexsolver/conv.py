"""The 3×3 convolution every network here is made of (VGG-19, the solver, AdaIN's decoder).

``conv3x3(x, w, b, padding)``: stride 1, output the size of the input, reflection or zero
padding, NHWC activations and HWIO kernels.

Lowerings that compute the same function are chosen per platform when the program is lowered
(``lax.platform_dependent``), so one jitted function stays portable:

* **CPU, direct**: XLA's CPU backend runs a ``"VALID"`` convolution several times slower than a
  ``"SAME"`` one of the same size, and its weight gradient slower still. So the forward pass
  reflect-pads, convolves with ``"SAME"`` and crops the 1-pixel border (the same sums, in the
  same order, as the ``"VALID"`` form), and a custom VJP computes
  the input gradient as a ``"SAME"`` convolution of the cotangent with the flipped,
  transposed kernel (then the adjoint of the padding), and
  the weight gradient as nine ``(C_in × BHW)·(BHW × C_out)`` matrix products, one per tap
  (for fewer than :data:`THIN` output channels, XLA's own weight gradient, faster there).
* **CPU, Winograd F(2×2,3×3)** (:func:`conv3x3_winograd`), where it is the faster one
  (:func:`_winograd_pays`: enough channels and tiles): 2.25× fewer multiplications, as 16
  matrix products on transformed 4×4 tiles. Under differentiation its gradients (JAX's own, on
  the same tiles) replace the direct ones; undifferentiated, it is used only where its forward
  pass alone wins (wide inputs), through a custom VJP that picks the forward per case.
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
WINOGRAD_MIN = 16  # channels (input and output) from which CPU convolutions use Winograd
WINOGRAD_MIN_TILES = 256  # ... on at least this many 2×2 output tiles (B·⌈H/2⌉·⌈W/2⌉)
WINOGRAD_MIN_FORWARD = 256  # input channels from which Winograd also wins without gradients


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

# Winograd F(2×2, 3×3) (Lavin & Gray, 2016): each 2×2 output tile is A^T [(G w G^T) ⊙ (B^T d B)] A
# for the 4×4 input tile d around it, so the 9 multiply-adds per output pixel and channel pair
# become 16 per 4 pixels: 2.25× fewer. The ⊙ over channels is 16 matrix products, one per
# position of the 4×4 transformed tile.
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def winograd_kernel(w: jax.Array) -> jax.Array:
    """``G w G^T``: ``(3,3,C_in,C_out)`` → ``(4,4,C_in,C_out)``."""
    g = jnp.asarray(_G, w.dtype)
    return jnp.einsum("ai,ijcd,bj->abcd", g, w, g)


def _input_transform(d0, d1, d2, d3):
    """One axis of ``B^T d B``, ``B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]``."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


def _output_transform(m0, m1, m2, m3):
    """One axis of ``A^T m A``, ``A^T = [[1,1,1,0],[0,1,-1,-1]]``."""
    return m0 + m1 + m2, m1 - m2 - m3


def _winograd_padded(xp: jax.Array, w: jax.Array) -> jax.Array:
    """VALID 3×3 correlation of a padded ``(B,H+2,W+2,C_in)`` input, by Winograd F(2×2,3×3).

    Written in plain JAX ops, so JAX's autodiff gives its gradients, which are Winograd too
    (the weight gradient is 16 products ``V_p^T dM_p`` on tiles instead of 9 on pixels).
    """
    b, hp, wp, c = xp.shape
    h, wd = hp - 2, wp - 2
    th, tw = (h + 1) // 2, (wd + 1) // 2  # tiles; odd sizes get one zero row/column, cropped
    xp = jnp.pad(xp, ((0, 0), (0, 2 * th + 2 - hp), (0, 2 * tw + 2 - wp), (0, 0)))
    u = winograd_kernel(w)
    c_out = u.shape[-1]
    r = xp.reshape(b, th + 1, 2, tw + 1, 2, c)  # tile row i of tile t is input row 2t + i
    rows = _input_transform(r[:, :th, 0], r[:, :th, 1], r[:, 1:, 0], r[:, 1:, 1])
    m = []  # m[a][e]: (B,th,tw,C_out), position (a, e) of the transformed tiles times u[a, e]
    for a, row in enumerate(rows):
        cols = _input_transform(row[:, :, :tw, 0], row[:, :, :tw, 1], row[:, :, 1:, 0], row[:, :, 1:, 1])
        # One 2-D product per position: XLA's CPU runs these faster than one batched product.
        m.append([(v.reshape(-1, c) @ u[a, e]).reshape(b, th, tw, c_out) for e, v in enumerate(cols)])
    # A^T m A: along a first (rows[e][i]: output row i of column position e), then along e.
    rows = [_output_transform(*(m[a][e] for a in range(4))) for e in range(4)]
    y = jnp.stack([jnp.stack(_output_transform(*(rows[e][i] for e in range(4))), axis=3) for i in range(2)], axis=2)
    return y.reshape(b, 2 * th, 2 * tw, c_out)[:, :h, :wd]


def conv3x3_winograd(x: jax.Array, w: jax.Array, padding: str = "reflect") -> jax.Array:
    """:func:`conv3x3` (no bias) by Winograd F(2×2,3×3), on any platform; differentiable."""
    _check(x, w, padding)
    return _winograd_padded(_pad1(x, padding), w)


def _winograd_pays(x: jax.Array, w: jax.Array, forward_only: bool) -> bool:
    """Whether Winograd is the faster CPU lowering for this shape (measured, DESIGN.md).

    With its gradients it wins from :data:`WINOGRAD_MIN` channels on at least
    :data:`WINOGRAD_MIN_TILES` 2×2 tiles; the forward pass alone only from
    :data:`WINOGRAD_MIN_FORWARD` input channels and ``4 ×`` as many tiles.
    """
    b, h, wd, c_in = x.shape
    tiles = b * ((h + 1) // 2) * ((wd + 1) // 2)
    if min(c_in, w.shape[3]) < WINOGRAD_MIN or tiles < WINOGRAD_MIN_TILES:
        return False
    return not forward_only or (c_in >= WINOGRAD_MIN_FORWARD and tiles >= 4 * WINOGRAD_MIN_TILES)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3x3_cpu_winograd(x: jax.Array, w: jax.Array, padding: str) -> jax.Array:
    # Undifferentiated (inference): the faster forward of the two.
    if _winograd_pays(x, w, forward_only=True):
        return conv3x3_winograd(x, w, padding)
    return _conv3x3_cpu(x, w, padding)


def _winograd_fwd(x, w, padding):
    # Differentiated (training): Winograd, whose gradients JAX derives; its VJP is the residual.
    return jax.vjp(lambda x, w: conv3x3_winograd(x, w, padding), x, w)


def _winograd_bwd(padding, vjp, dy):
    return vjp(dy)


_conv3x3_cpu_winograd.defvjp(_winograd_fwd, _winograd_bwd)


def _cpu(x: jax.Array, w: jax.Array, padding: str) -> jax.Array:
    """The CPU lowering: Winograd (with its gradients) where it pays, else SAME-then-crop."""
    if _winograd_pays(x, w, forward_only=False):
        return _conv3x3_cpu_winograd(x, w, padding)
    return _conv3x3_cpu(x, w, padding)


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
        cpu=lambda x, w: _cpu(x, w, padding),
        default=lambda x, w: conv3x3_reference(x, w, padding),
    )
    return y if b is None else y + b
