"""The 3×3 convolution every network here is made of (VGG-19, the solver, AdaIN's decoder).

``conv3x3(x, w, b, padding)``: stride 1, output the size of the input, reflection or zero
padding, NHWC activations and HWIO kernels; ``conv3x3_sum(xs, ws, padding)``: ``Σ_k conv3x3(x_k, w_k)``.

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
* **CPU, Winograd F(m×m,3×3)** (:func:`conv3x3_winograd`), where it is the faster one
  (:func:`_winograd_pays`: enough channels and tiles): (m+2)² matrix products on transformed
  (m+2)×(m+2) tiles, 2.25× (m = 2) or 4× (m = 4) fewer multiplications, the output transform one
  product with a constant ``(m², (m+2)²)`` matrix. Its custom VJP is Winograd on the same tiles:
  (m+2)² products for the kernel's gradient and (m+2)² for the input's, whose transform's
  adjoint is assembled phase plane by phase plane. Under differentiation it replaces
  the direct lowering, with m = 4 on many tiles (:data:`WINOGRAD4_MIN_TILES`); undifferentiated,
  it is used only where its forward pass alone wins (wide inputs, m = 2), through a custom VJP
  that picks the forward per case.
* **CPU, thin output** (fewer than :data:`THIN` output channels from at least
  :data:`THIN_PRODUCT_MIN` input channels; :func:`conv3x3_sum` for several inputs, as in the
  solver's last convolution to RGB): 1×1 products giving every tap's contribution, padded, then
  the sum of the nine shifted slices, with its own custom VJP; no concatenation of the inputs.
* **GPU/TPU** (and anything else): ``lax.conv_general_dilated`` with its own autodiff.

Reverse mode (``grad``, ``vjp``, also nested) works on every platform; forward mode (``jvp``)
does not, as for any ``custom_vjp``. ``docs/DESIGN.md`` has the measurements behind these choices (``benchmarks/conv_speed.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

_DN = ("NHWC", "HWIO", "NHWC")
PADDINGS = ("reflect", "zero")
THIN = 8  # below this many output channels the CPU weight gradient uses XLA's own (measured)
WINOGRAD_MIN = 16  # channels (input and output) from which CPU convolutions use Winograd
WINOGRAD_MIN_TILES = 256  # ... on at least this many 2×2 output tiles (B·⌈H/2⌉·⌈W/2⌉)
WINOGRAD_MIN_FORWARD = 256  # input channels from which Winograd also wins without gradients
WINOGRAD4_MIN_TILES = 256  # 4×4 output tiles from which the differentiated forward uses F(4×4,3×3)
THIN_PRODUCT_MIN = 64  # input channels from which a thin output uses products, then shifted sums


def _check(x: jax.Array, w: jax.Array, padding: str) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if x.ndim != 4 or w.shape[:2] != (3, 3) or w.ndim != 4 or x.shape[-1] != w.shape[2]:
        raise ValueError(f"conv3x3 needs x (B,H,W,C_in) and w (3,3,C_in,C_out), got {x.shape} and {w.shape}")


def _pad1(x: jax.Array, padding: str) -> jax.Array:
    mode = "reflect" if padding == "reflect" else "constant"
    return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=mode)


def _pad1_adjoint(dp: jax.Array, padding: str) -> jax.Array:
    """The adjoint of :func:`_pad1`: a cotangent ``(B,H+2,W+2,C)`` folded back to ``(B,H,W,C)``."""
    b, hp, wp, c = dp.shape
    unpadded = jax.ShapeDtypeStruct((b, hp - 2, wp - 2, c), dp.dtype)
    (d,) = jax.linear_transpose(lambda a: _pad1(a, padding), unpadded)(dp)
    return d


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

    def same(a):  # SAME correlation with the adjoint's kernel; a thin input (VGG's RGB conv1_1)
        # has a thin adjoint, computed as products, then shifted sums.
        return _thin_sum((a,), (w_t,), "zero") if _thin_pays(*w_t.shape[2:]) else _conv_same(a, w_t)

    if padding == "zero":
        dx = same(dy)
    else:
        # Gradient with respect to the padded input (a "full" correlation, written as SAME on a
        # zero-padded cotangent), then the adjoint of the reflection padding.
        dx = _pad1_adjoint(same(jnp.pad(dy, ((0, 0), (1, 1), (1, 1), (0, 0)))), padding)
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

# Winograd F(m×m, 3×3) (Lavin & Gray, 2016): each m×m output tile is A^T [(G w G^T) ⊙ (B^T d B)] A
# for the (m+2)×(m+2) input tile d around it, so the 9 multiply-adds per output pixel and channel
# pair become (m+2)² per m² pixels: 2.25× fewer for m = 2, 4× fewer for m = 4. The ⊙ over
# channels is (m+2)² matrix products, one per position of the transformed tile.
_WINOGRAD = {  # m: (B^T, G, A^T)
    2: (
        ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
        ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),
        ((1, 1, 1, 0), (0, 1, -1, -1)),
    ),
    4: (
        ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0),
         (0, 4, 0, -5, 0, 1)),
        ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6), (1 / 24, 1 / 12, 1 / 6),
         (1 / 24, -1 / 12, 1 / 6), (0, 0, 1)),
        ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
    ),
}


def winograd_kernel(w: jax.Array, m: int = 2) -> jax.Array:
    """``G w G^T``: ``(3,3,C_in,C_out)`` → ``(m+2,m+2,C_in,C_out)``."""
    g = jnp.asarray(_WINOGRAD[m][1], w.dtype)
    return jnp.einsum("ai,ijcd,bj->abcd", g, w, g)


def _combine(coefficients: Sequence[float], terms: Sequence[jax.Array]) -> jax.Array:
    """``Σ_i c_i · t_i`` over the non-zero constants (``±1`` without a multiplication)."""
    out = None
    for c, t in zip(coefficients, terms):
        if c == 0:
            continue
        t = t if c == 1 else -t if c == -1 else c * t
        out = t if out is None else out + t
    return out


def _tiles(h: int, w: int, m: int) -> tuple[int, int]:
    return -(-h // m), -(-w // m)


def _winograd_inputs(xp: jax.Array, m: int) -> list[list[jax.Array]]:
    """``B^T d B`` of every tile of a padded input ``(B,H+2,W+2,C)``, zero-extended to whole
    tiles: ``v[a][e]`` ``(B·th·tw, C)``, one per transformed position (tile ``(t, s)`` starts at
    pixel ``(m·t, m·s)``)."""
    bt = _WINOGRAD[m][0]
    b, hp, wp, c = xp.shape
    th, tw = _tiles(hp - 2, wp - 2, m)
    xp = jnp.pad(xp, ((0, 0), (0, m * (th + 1) - hp), (0, m * (tw + 1) - wp), (0, 0)))
    r = xp.reshape(b, th + 1, m, tw + 1, m, c)  # pixel row m·t + i is r[:, t, i]
    # Row i < m + 2 of tile t is pixel row m·t + i: r[:, t, i], or r[:, t + 1, i − m] past m.
    rows = [r[:, :th, i] if i < m else r[:, 1:, i - m] for i in range(m + 2)]
    rows = [_combine(bt[a], rows) for a in range(m + 2)]
    return [
        [
            _combine(bt[e], [row[:, :, :tw, j] if j < m else row[:, :, 1:, j - m] for j in range(m + 2)])
            .reshape(-1, c)
            for e in range(m + 2)
        ]
        for row in rows
    ]


def _output_matrix(m: int, dtype) -> np.ndarray:
    """``A^T ⊗ A^T``, ``(m², (m+2)²)``: a tile's output pixel ``(i, j)`` from its products (a constant)."""
    at = np.asarray(_WINOGRAD[m][2], dtype)
    return np.kron(at, at)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _winograd_padded(xp: jax.Array, w: jax.Array, m: int) -> jax.Array:
    """VALID 3×3 correlation of a padded ``(B,H+2,W+2,C_in)`` input, by Winograd F(m×m,3×3).

    The ``(m+2)²`` per-position products ``M_p = V_p U_p``, then the output transform as one
    product with ``A^T ⊗ A^T`` (so that XLA materialises its input once, instead of recomputing
    the producer in each consumer). Its VJP (:func:`_winograd_bwd_padded`) is Winograd too.
    """
    b, hp, wp, _ = xp.shape
    th, tw = _tiles(hp - 2, wp - 2, m)
    u = winograd_kernel(w, m)
    v = _winograd_inputs(xp, m)
    # One 2-D product per position: XLA's CPU runs these faster than one batched product.
    prods = jnp.stack([v[a][e] @ u[a, e] for a in range(m + 2) for e in range(m + 2)])
    c_out = u.shape[-1]
    y = (_output_matrix(m, xp.dtype) @ prods.reshape((m + 2) ** 2, -1)).reshape(m, m, b, th, tw, c_out)
    return y.transpose(2, 3, 0, 4, 1, 5).reshape(b, m * th, m * tw, c_out)[:, : hp - 2, : wp - 2]


def _winograd_fwd_padded(xp, w, m):
    return _winograd_padded(xp, w, m), (xp, w)


def _winograd_bwd_padded(m, residuals, dy):
    """``dU_p = V_pᵀ dM_p`` then ``dW = Gᵀ dU G``; ``dV_p = dM_p U_pᵀ``, then the input transform's
    adjoint, assembled as the ``m²`` phase planes of the padded input (pixel ``(m·t + i, m·s + j)``,
    ``i, j < m``, gets element ``(i, j)`` of tile ``(t, s)`` and, for ``i < 2`` or ``j < 2``, the
    overlapping elements ``i + m`` / ``j + m`` of the tiles before), not as zero-padded full-size maps."""
    xp, w = residuals
    bt = _WINOGRAD[m][0]
    a = m + 2
    b, hp, wp, c = xp.shape
    th, tw = _tiles(hp - 2, wp - 2, m)
    u = winograd_kernel(w, m)
    c_out = u.shape[-1]
    # Recomputed from the padded input rather than kept from the forward pass: as fast (measured)
    # and (m+2)²/m² times less memory held between the passes.
    v = _winograd_inputs(xp, m)
    dy = jnp.pad(dy, ((0, 0), (0, m * th + 2 - hp), (0, m * tw + 2 - wp), (0, 0)))
    dy = dy.reshape(b, th, m, tw, m, c_out).transpose(2, 4, 0, 1, 3, 5).reshape(m * m, -1)
    dm = (_output_matrix(m, dy.dtype).T @ dy).reshape(a, a, -1, c_out)
    du = jnp.stack([jnp.stack([v[p][q].T @ dm[p, q] for q in range(a)]) for p in range(a)])
    g = jnp.asarray(_WINOGRAD[m][1], w.dtype)
    dw = jnp.einsum("ai,abcd,bj->ijcd", g, du, g)
    # The input transform's adjoint (B instead of B^T) along both axes: dd[i][j], tile element (i, j).
    col = lambda i: [bt[p][i] for p in range(a)]  # noqa: E731
    if m == 4:
        # The first axis as one product with B (B^T's transpose), so that XLA materialises it:
        # fused into the second, each element would recompute up to 25 of the 36 products' values.
        dvs = jnp.stack([dm[p, q] @ u[p, q].T for p in range(a) for q in range(a)]).reshape(a, -1)
        rows = (np.asarray(bt, dvs.dtype).T @ dvs).reshape(a, a, b, th, tw, c)
        dd = [[_combine(col(j), [rows[i, q] for q in range(a)]) for j in range(a)] for i in range(a)]
    else:
        dv = [[(dm[p, q] @ u[p, q].T).reshape(b, th, tw, c) for q in range(a)] for p in range(a)]
        rows = [[_combine(col(i), [dv[p][q] for p in range(a)]) for q in range(a)] for i in range(a)]
        dd = [[_combine(col(j), rows[i]) for j in range(a)] for i in range(a)]
    # Phase (i, j) over (th+1) × (tw+1) positions: element (i, j) of tile (t, s) plus, where the
    # tiles overlap, element (i + m, j) of tile (t − 1, s), (i, j + m) of (t, s − 1) and so on.
    shift = lambda x, ki, kj: jnp.pad(x, ((0, 0), (ki, 1 - ki), (kj, 1 - kj), (0, 0)))  # noqa: E731
    phases = [
        [
            sum(shift(dd[i + m * ki][j + m * kj], ki, kj) for ki in range(1 + (i < 2)) for kj in range(1 + (j < 2)))
            for j in range(m)
        ]
        for i in range(m)
    ]
    dxp = jnp.stack([jnp.stack(phases[i], axis=3) for i in range(m)], axis=2)  # (B, th+1, m, tw+1, m, C)
    dxp = dxp.reshape(b, m * (th + 1), m * (tw + 1), c)[:, :hp, :wp]
    return dxp.astype(xp.dtype), dw.astype(w.dtype)


_winograd_padded.defvjp(_winograd_fwd_padded, _winograd_bwd_padded)


def conv3x3_winograd(x: jax.Array, w: jax.Array, padding: str = "reflect", m: int = 2) -> jax.Array:
    """:func:`conv3x3` (no bias) by Winograd F(m×m,3×3), ``m`` 2 or 4, on any platform; differentiable."""
    _check(x, w, padding)
    if m not in _WINOGRAD:
        raise ValueError(f"Winograd tiles m must be one of {tuple(_WINOGRAD)}, got {m}")
    return _winograd_padded(_pad1(x, padding), w, m)


def _winograd_pays(x: jax.Array, w: jax.Array, forward_only: bool) -> bool:
    """Whether Winograd is the faster CPU lowering for this shape (measured, DESIGN.md).

    With its gradients it wins from :data:`WINOGRAD_MIN` channels on at least
    :data:`WINOGRAD_MIN_TILES` 2×2 tiles; the forward pass alone only from
    :data:`WINOGRAD_MIN_FORWARD` input channels and ``4 ×`` as many tiles.
    """
    b, h, wd, c_in = x.shape
    th, tw = _tiles(h, wd, 2)
    tiles = b * th * tw
    if min(c_in, w.shape[3]) < WINOGRAD_MIN or tiles < WINOGRAD_MIN_TILES:
        return False
    return not forward_only or (c_in >= WINOGRAD_MIN_FORWARD and tiles >= 4 * WINOGRAD_MIN_TILES)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3x3_cpu_winograd(x: jax.Array, w: jax.Array, padding: str) -> jax.Array:
    # Undifferentiated (inference): the faster forward of the two.
    if _winograd_pays(x, w, forward_only=True):
        return conv3x3_winograd(x, w, padding)
    return _conv3x3_cpu(x, w, padding)


def _winograd_tile_size(x: jax.Array) -> int:
    """``m`` of F(m×m,3×3) under differentiation: 4 on at least :data:`WINOGRAD4_MIN_TILES` 4×4
    tiles (fewer products, smaller transformed tiles), else 2."""
    b, h, wd, _ = x.shape
    th, tw = _tiles(h, wd, 4)
    return 4 if b * th * tw >= WINOGRAD4_MIN_TILES else 2


def _winograd_fwd(x, w, padding):
    # Differentiated (training): Winograd and its own VJP, kept as the residual.
    m = _winograd_tile_size(x)
    return jax.vjp(lambda x, w: conv3x3_winograd(x, w, padding, m), x, w)


def _winograd_bwd(padding, vjp, dy):
    return vjp(dy)


_conv3x3_cpu_winograd.defvjp(_winograd_fwd, _winograd_bwd)


def _tap_matrix(w: jax.Array) -> jax.Array:
    """``(3,3,C_in,C_out)`` → ``(C_in, 9·C_out)``: the nine taps side by side, tap ``3i + j`` at
    columns ``[(3i + j)·C_out, (3i + j + 1)·C_out)``."""
    return w.transpose(2, 0, 1, 3).reshape(w.shape[2], 9 * w.shape[3])


def _thin_pays(c_in: int, c_out: int) -> bool:
    """Whether the "products, then shifted sums" form is the faster CPU lowering (DESIGN.md)."""
    return c_out < THIN and c_in >= THIN_PRODUCT_MIN


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _thin_sum(xs: tuple, ws: tuple, padding: str) -> jax.Array:
    """``Σ_k conv3x3(x_k, w_k)`` for a thin output: one ``(BHW × C_k)·(C_k × 9·C_out)`` product per
    input gives every tap's contribution ``z``; padding ``z`` equals convolving the padded input
    (a 1×1 product commutes with reflection and zero padding); the output is the sum of the nine
    shifted ``C_out``-channel slices of the padded ``z``. No 9×-wide patches, no concatenation."""
    b, h, wd, _ = xs[0].shape
    c_out = ws[0].shape[-1]
    z = sum(x.reshape(-1, x.shape[-1]) @ _tap_matrix(w) for x, w in zip(xs, ws))
    zp = _pad1(z.reshape(b, h, wd, 9 * c_out), padding)
    return sum(
        zp[:, i : i + h, j : j + wd, (3 * i + j) * c_out : (3 * i + j + 1) * c_out] for i in range(3) for j in range(3)
    )


def _thin_fwd(xs, ws, padding):
    return _thin_sum(xs, ws, padding), (xs, ws)


def _thin_bwd(padding, residuals, dy):
    xs, ws = residuals
    c_out = dy.shape[-1]
    # Each tap's cotangent is dy shifted into the padded frame; the padding's adjoint folds the
    # border back, giving dz (BHW × 9·C_out); then dx_k = dz W_kᵀ and dW_k = x_kᵀ dz.
    dzp = jnp.concatenate([jnp.pad(dy, ((0, 0), (i, 2 - i), (j, 2 - j), (0, 0))) for i in range(3) for j in range(3)], -1)
    dz = _pad1_adjoint(dzp, padding).reshape(-1, 9 * c_out)
    dxs = tuple((dz @ _tap_matrix(w).T).reshape(x.shape).astype(x.dtype) for x, w in zip(xs, ws))
    dws = tuple(
        (x.reshape(-1, x.shape[-1]).T @ dz).reshape(w.shape[2], 3, 3, c_out).transpose(1, 2, 0, 3).astype(w.dtype)
        for x, w in zip(xs, ws)
    )
    return dxs, dws


_thin_sum.defvjp(_thin_fwd, _thin_bwd)


def _cpu(x: jax.Array, w: jax.Array, padding: str) -> jax.Array:
    """The CPU lowering: Winograd (with its gradients) where it pays, products-then-shifted-sums
    for a thin output from many channels, else SAME-then-crop."""
    if _thin_pays(x.shape[-1], w.shape[-1]):
        return _thin_sum((x,), (w,), padding)
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


def conv3x3_sum(xs: Sequence[jax.Array], ws: Sequence[jax.Array], padding: str = "reflect") -> jax.Array:
    """``Σ_k conv3x3(x_k, w_k)`` (no bias): several inputs convolved into one output.

    Args:
      xs: inputs ``(B,H,W,C_k)``, all of the same ``B,H,W``.
      ws: kernels ``(3,3,C_k,C_out)``, one per input.
      padding: as :func:`conv3x3`.
    Returns:
      ``(B,H,W,C_out)``: the same as one :func:`conv3x3` of the inputs concatenated along channels
      with the kernels stacked, which is how GPU/TPU compute it; on CPU a thin output from many
      channels in all (the solver's last convolution, to RGB) skips the concatenation.
    """
    xs, ws = tuple(xs), tuple(ws)
    if not xs or len(xs) != len(ws):
        raise ValueError(f"conv3x3_sum needs as many kernels as inputs (at least one), got {len(xs)} and {len(ws)}")
    for x, w in zip(xs, ws):
        _check(x, w, padding)
    if len({x.shape[:3] for x in xs}) > 1 or len({w.shape[3] for w in ws}) > 1:
        raise ValueError("conv3x3_sum needs inputs of one (B,H,W) and kernels of one C_out")
    concatenated = lambda *a: conv3x3(jnp.concatenate(a[: len(xs)], -1), jnp.concatenate(a[len(xs) :], 2), padding=padding)  # noqa: E731
    if not _thin_pays(sum(x.shape[-1] for x in xs), ws[0].shape[-1]):
        return concatenated(*xs, *ws)
    return jax.lax.platform_dependent(
        *xs, *ws,
        cpu=lambda *a: _thin_sum(a[: len(xs)], a[len(xs) :], padding),
        default=concatenated,
    )
