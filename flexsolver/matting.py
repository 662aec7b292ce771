"""The matting Laplacian of a content image and the photorealism prox ``(I + 2λℒ)⁻¹`` (SPEC §4.1).

``ℒ`` is the matting Laplacian of Levin et al. (2008) with 3×3 windows (r = 1), in pymatting's
convention (``pymatting.cf_laplacian``, checked in ``tests/test_matting.py``): for pixels ``i, j``

    ℒ_ij = Σ_{k | i,j ∈ w_k} δ_ij − (1/9)(1 + (I_i − μ_k)ᵀ (Σ_k + (ε/9) I₃)⁻¹ (I_j − μ_k)),

over the windows ``w_k`` lying fully inside the image (``μ_k, Σ_k``: mean and biased covariance
of the 9 colours of ``w_k``). Each row has at most 25 non-zeros, at offsets ``(dy, dx) ∈ [-2,2]²``.

**Representation.** ``ℒ`` is never densified. :func:`matting_laplacian` returns a
:class:`MattingLaplacian` pytree holding either

* ``"stencil"`` (default): 25 coefficient images, stored as ``coeffs`` of shape ``(25,H,W)``
  (one contiguous plane per offset, the coalesced layout on a GPU),
  ``coeffs[5(dy+2)+(dx+2), y, x] = ℒ[(y,x), (y+dy,x+dx)]``, applied as 25 shifted
  multiply-adds that XLA fuses into one pass (zero outside the image). It needs no index
  gathers or scatter-adds, and is much faster than BCOO, hence the default;
* ``"bcoo"``: a ``jax.experimental.sparse.BCOO`` matrix ``(HW, HW)`` applied to ``(HW, C)``.

**Building.** The coefficients are computed vectorised in JAX (Python loops only over the 81
pairs of window positions, on whole-image arrays, never over pixels) **in float64** (inside
``jax.enable_x64``) and stored in float32. Float64 is needed: with ``ε = 1e-7`` the regularised
covariance has eigenvalues down to ``ε/9 ≈ 1e-8`` next to ``~0.1``, so in float32 the result is
meaningless in near-grey windows. The 3×3 inverse goes through a Cholesky factor, not cofactors,
whose determinant cancels (which is why pymatting's own entries are slightly off). The entries
are bounded (``|ℒ_ij| ≤ 9``), so float32 storage is harmless.

**The prox.** :func:`matting_prox` returns ``Y ↦ P(ℒ) Y ≈ (I + 2λℒ)⁻¹ Y`` (per channel, the
same ``ℒ`` for every image of a batch), a polynomial of degree ``order`` in ``ℒ`` evaluated by a
three-term recurrence: one product ``ℒv`` per degree, nothing inverted or factorised.

* *Spectrum bound* ``λmax = 9``, proven for r = 1: ℒ = Σ_k P_kᵀ A_k P_k with
  ``A_k = I − (1/9)𝟙𝟙ᵀ − C_k(C_kᵀC_k + εI)⁻¹C_kᵀ`` (``C_k``: the 9×3 centred colours), whose
  eigenvalues lie in ``[0, 1]`` (``C_kᵀ𝟙 = 0`` and ``C(CᵀC + εI)⁻¹Cᵀ ≺`` the projection on
  range ``C``), and each pixel lies in at most 9 windows, so ``0 ≤ vᵀℒv ≤ Σ_k ‖P_k v‖² ≤ 9‖v‖²``.
  It is tight on photos (flat regions carry checkerboard-like modes with eigenvalue → 9).
  Gershgorin (max row sum of ``|ℒ_ij|``) is valid but looser, so it is not used; nor are power
  iterations (not a proof, and nothing to gain over a tight 9).
* *Polynomial*, three variants (``method``), all with the same asymptotic rate
  ``q = e^{−acosh(1 + 1/(λ·λmax))} ≈ 0.9355`` per degree at λ = 50 (the pole of
  ``1/(1+2λx)`` at ``x = −1/(2λ)`` is that close to ``[0, 9]``; warping the interval or
  iterating on ``(I+2λℒ)x = Y`` cannot beat it, it is the same polynomial space):

  - ``"semi"``: the Chebyshev semi-iterative method for ``(I + 2λℒ)x = Y`` on the spectrum
    ``[1, 1 + 2λλmax]``: minimax for the relative error per eigenvector, with the guarantee
    ``‖x_n − x‖ ≤ ‖x‖ / T_{n+1}(1 + 1/(λλmax))`` for every ``Y``;
  - ``"series"``: the truncated Chebyshev series of ``h(x) = 1/(1+2λx)`` on ``[0, λmax]``
    (closed-form coefficients ``∝ (−q)^k``, checked against PyGSP): smaller errors than ``semi``
    in practice, without its guarantee;
  - ``"anchored"`` (default): the same series with ``c_0`` corrected so that ``P(0) = h(0) = 1``
    exactly. The truncation error of the series is largest, and of one sign, at ``x = 0``,
    which is where the solution lives: nearly all the energy of ``x`` lies on eigenvalues close
    to 0 — the constants and the locally-affine-in-colour images that the prox must let
    through. Anchoring removes that error.
* *Default order:* :func:`default_order`, the smallest ``n`` with ``q^n ≤ 1/64``: **63 at
  λ = 50** (28 at λ = 10, 89 at λ = 100). Static (from the Python ``λ``, not the data).

Every measurement behind these choices (timings of the layouts, float32 and cofactor errors,
the spectrum on photos, errors per order and method against an exact solve, speed against
scipy) is in docs/DESIGN.md ("Matting Laplacian and its prox", and "Numbers moved out of module
docstrings").
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse
from jax.tree_util import Partial

__all__ = [
    "LMAX_BOUND",
    "MattingLaplacian",
    "chebyshev_series_coefficients",
    "default_order",
    "laplacian_to_scipy",
    "matting_laplacian",
    "matting_prox",
]

RADIUS = 1
METHODS = ("anchored", "series", "semi")
LMAX_BOUND = 9.0  # (2r+1)² for r = 1: λmax(ℒ) ≤ 9, see the module docstring
DEFAULT_TOL = 1.0 / 64.0
OFFSETS = tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3))  # index 5(dy+2)+(dx+2)
_WINDOW = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


# ---------------------------------------------------------------------------------------------
# building the coefficients


@jax.jit
def _stencil_coefficients(image: jax.Array, eps: jax.Array) -> jax.Array:
    """``(25,H,W)`` coefficients of ℒ (dtype of ``image``; call it in float64).

    Per window ``k`` (centre): ``μ_k`` and ``M_k = (Σ_k + ε/9 I)⁻¹`` (by Cholesky). Then, in the
    frame of the row pixel ``i`` (so that every term is an elementwise expression of shifted
    whole images, fused by XLA into one pass, no ``(81,H,W)`` intermediate): for each position
    ``a`` of ``i`` in a window ``k = i − a`` and each position ``b`` (column ``j = i + b − a``),
    ``ℒ_ij += [k inside] (δ_ab − 1/9) − e·(I_j − μ_k)/9`` with ``e = M_k(I_i − μ_k)``."""
    h, w, _ = image.shape
    img = jnp.moveaxis(image, -1, 0)  # (3, H, W)
    patches = [img[:, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] for dy, dx in _WINDOW]
    mean = sum(patches) / 9.0  # (3, H-2, W-2): windows fully inside the image
    cen = [p - mean for p in patches]

    def cov(a, b):
        return sum(c[a] * c[b] for c in cen) / 9.0

    reg = eps / 9.0
    a00, a11, a22 = cov(0, 0) + reg, cov(1, 1) + reg, cov(2, 2) + reg
    a01, a02, a12 = cov(0, 1), cov(0, 2), cov(1, 2)
    # M = (Σ + ε/9 I)⁻¹ through the Cholesky factor L (S = LLᵀ, M = L⁻ᵀL⁻¹). Not cofactors:
    # with eigenvalues from ~1e-8 to ~0.1 the cofactor determinant cancels (relative error
    # 4e-6 in M on `astronaut`, as in pymatting's own code); this is as accurate as LU (2e-10).
    l00 = jnp.sqrt(a00)
    l10, l20 = a01 / l00, a02 / l00
    l11 = jnp.sqrt(a11 - l10 * l10)
    l21 = (a12 - l20 * l10) / l11
    l22 = jnp.sqrt(a22 - l20 * l20 - l21 * l21)
    k00, k11, k22 = 1.0 / l00, 1.0 / l11, 1.0 / l22  # K = L⁻¹, lower triangular
    k10 = -l10 * k00 * k11
    k21 = -l21 * k11 * k22
    k20 = -(l20 * k00 + l21 * k10) * k22
    inv = [
        k00 * k00 + k10 * k10 + k20 * k20,  # m00
        k10 * k11 + k20 * k21,  # m01
        k20 * k22,  # m02
        k11 * k11 + k21 * k21,  # m11
        k21 * k22,  # m12
        k22 * k22,  # m22
    ]
    stats = [*inv, *mean, jnp.ones_like(a00)]
    # by window centre, zero (and inside = 0) where no window: index (y+1, x+1) ↔ centre (y, x)
    stats = jnp.pad(jnp.stack(stats), ((0, 0), (2, 2), (2, 2)))  # (10, H+2, W+2)
    img_pad = jnp.pad(img, ((0, 0), (2, 2), (2, 2)))  # I_{i+o} = img_pad[:, 2+oy…, 2+ox…]
    out = [jnp.zeros((h, w), image.dtype) for _ in OFFSETS]
    for a, (ay, ax) in enumerate(_WINDOW):
        shifted = stats[:, 1 - ay : 1 - ay + h, 1 - ax : 1 - ax + w]  # window k = i − a
        n00, n01, n02, n11, n12, n22, u0, u1, u2, ok = shifted
        d0, d1, d2 = img[0] - u0, img[1] - u1, img[2] - u2
        e0 = n00 * d0 + n01 * d1 + n02 * d2
        e1 = n01 * d0 + n11 * d1 + n12 * d2
        e2 = n02 * d0 + n12 * d1 + n22 * d2
        for b, (by, bx) in enumerate(_WINDOW):
            oy, ox = by - ay, bx - ax
            ij = img_pad[:, 2 + oy : 2 + oy + h, 2 + ox : 2 + ox + w]
            # (I_i − μ)ᵀ M (I_j − μ)
            quad = e0 * (ij[0] - u0) + e1 * (ij[1] - u1) + e2 * (ij[2] - u2)
            o = 5 * (oy + 2) + (ox + 2)
            out[o] = out[o] + ok * ((1.0 if a == b else 0.0) - 1.0 / 9.0) - quad / 9.0
    return jnp.stack(out, axis=0)


def _bcoo_from_coefficients(coeffs: np.ndarray) -> jsparse.BCOO:
    _, h, w = coeffs.shape
    yy, xx = np.mgrid[0:h, 0:w]
    rows, cols, vals = [], [], []
    for o, (dy, dx) in enumerate(OFFSETS):
        ok = (yy + dy >= 0) & (yy + dy < h) & (xx + dx >= 0) & (xx + dx < w)
        rows.append((yy * w + xx)[ok])
        cols.append(((yy + dy) * w + xx + dx)[ok])
        vals.append(coeffs[o][ok])
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    order = np.lexsort((cols, rows))
    indices = np.stack([rows[order], cols[order]], axis=1).astype(np.int32)
    return jsparse.BCOO(
        (jnp.asarray(vals[order]), jnp.asarray(indices)),
        shape=(h * w, h * w),
        indices_sorted=True,
        unique_indices=True,
    )


# ---------------------------------------------------------------------------------------------
# the operator


def _stencil_matvec(coeffs: jax.Array, v: jax.Array) -> jax.Array:
    """``v`` of shape ``(…, H, W, C)``; ``coeffs`` ``(25, H, W)``; zero outside the image."""
    h, w = coeffs.shape[1:]
    pads = [(0, 0)] * (v.ndim - 3) + [(2, 2), (2, 2), (0, 0)]
    vp = jnp.pad(v, pads)
    out = None
    for o, (dy, dx) in enumerate(OFFSETS):
        term = coeffs[o, :, :, None] * vp[..., 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w, :]
        out = term if out is None else out + term
    return out


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class MattingLaplacian:
    """ℒ of an ``(H,W)`` image as a pytree. Exactly one of ``coeffs`` (``(25,H,W)`` float32,
    ``coeffs[5(dy+2)+(dx+2), y, x] = ℒ[(y,x), (y+dy,x+dx)]``, see :data:`OFFSETS`) and ``bcoo``
    (``BCOO (HW,HW)``) is set. Its leaves are arrays only, so the Laplacian of another image of
    the same size has the same treedef (no recompilation)."""

    coeffs: jax.Array | None
    bcoo: jsparse.BCOO | None
    shape: tuple[int, int]  # (H, W), static

    def tree_flatten(self):
        return (self.coeffs, self.bcoo), self.shape

    @classmethod
    def tree_unflatten(cls, shape, children):
        return cls(*children, shape)

    @property
    def form(self) -> str:
        return "stencil" if self.coeffs is not None else "bcoo"

    def matvec(self, v: jax.Array) -> jax.Array:
        """``ℒv`` for ``v`` of shape ``(H,W)``, ``(H,W,C)`` or ``(B,H,W,C)``."""
        h, w = self.shape
        if v.ndim == 2:
            return self.matvec(v[..., None])[..., 0]
        if v.ndim < 2 or v.shape[-3:-1] != (h, w):
            raise ValueError(f"matvec needs (H,W)[,C] = ({h},{w}), got shape {v.shape}")
        if self.coeffs is not None:
            return _stencil_matvec(self.coeffs.astype(v.dtype), v)
        lead, c = v.shape[:-3], v.shape[-1]
        flat = jnp.moveaxis(v.reshape((-1, h * w, c)), 0, 1).reshape(h * w, -1)
        out = (self.bcoo @ flat.astype(self.bcoo.dtype)).astype(v.dtype)
        out = jnp.moveaxis(out.reshape(h * w, -1, c), 1, 0)
        return out.reshape(lead + (h, w, c))

    __matmul__ = matvec

    def to_bcoo(self) -> MattingLaplacian:
        if self.bcoo is not None:
            return self
        return MattingLaplacian(None, _bcoo_from_coefficients(np.asarray(self.coeffs)), self.shape)

    def to_stencil(self) -> MattingLaplacian:
        if self.coeffs is not None:
            return self
        h, w = self.shape
        idx = np.asarray(self.bcoo.indices)
        vals = np.asarray(self.bcoo.data)
        i, j = idx[:, 0], idx[:, 1]
        dy, dx = j // w - i // w, j % w - i % w
        coeffs = np.zeros((25, h * w), vals.dtype)
        coeffs[5 * (dy + 2) + dx + 2, i] = vals
        return MattingLaplacian(jnp.asarray(coeffs.reshape(25, h, w)), None, self.shape)


def matting_laplacian(x_c, eps: float = 1e-7, form: str = "stencil") -> MattingLaplacian:
    """The matting Laplacian (r = 1) of a content image ``x_c`` ``(H,W,3)`` in [0,1].

    Built eagerly in float64 (call it outside ``jit``), stored in float32. ``form``:
    ``"stencil"`` (default, faster) or ``"bcoo"``."""
    if form not in ("stencil", "bcoo"):
        raise ValueError(f"form must be 'stencil' or 'bcoo', got {form!r}")
    if isinstance(x_c, jax.core.Tracer):
        raise TypeError("matting_laplacian builds on concrete arrays: call it outside jit")
    shape = tuple(np.shape(x_c))
    if len(shape) != 3 or shape[-1] != 3 or shape[0] < 3 or shape[1] < 3:
        raise ValueError(f"x_c must be (H,W,3) with H,W >= 3, got {shape}")
    with jax.enable_x64(True):
        image = jnp.asarray(np.asarray(x_c, np.float64))
        coeffs = _stencil_coefficients(image, jnp.float64(eps))
        coeffs = coeffs.astype(jnp.float32)
    lap = MattingLaplacian(coeffs, None, shape[:2])
    return lap.to_bcoo() if form == "bcoo" else lap


def laplacian_to_scipy(lap: MattingLaplacian):
    """``scipy.sparse.csr_matrix`` (float64) of ℒ, pixels in row-major order (tests, benchmarks)."""
    import scipy.sparse

    h, w = lap.shape
    b = lap.to_bcoo().bcoo
    idx = np.asarray(b.indices)
    vals = np.asarray(b.data, np.float64)
    return scipy.sparse.csr_matrix((vals, (idx[:, 0], idx[:, 1])), shape=(h * w, h * w))


# ---------------------------------------------------------------------------------------------
# the prox


def default_order(lam: float, lmax: float = LMAX_BOUND, tol: float = DEFAULT_TOL) -> int:
    """Smallest ``n`` with ``q^n ≤ tol``, ``q = e^{−acosh(1 + 1/(λ·λmax))}`` the decay rate of the
    Chebyshev coefficients of ``1/(1+2λx)`` on ``[0, λmax]`` (also the convergence rate of
    every method here). ``tol = 1/64`` gives 63 at λ = 50, calibrated by the measured errors
    in docs/DESIGN.md (≤ 6e-3 with a different photo as ``Y``)."""
    if lam <= 0:
        return 0
    rate = math.acosh(1.0 + 1.0 / (lam * lmax))
    return max(1, math.ceil(math.log(1.0 / tol) / rate))


def chebyshev_series_coefficients(lam, lmax, order: int, anchored: bool = False) -> jax.Array:
    """Chebyshev coefficients ``c_0 … c_order`` of ``h(x) = 1/(1+2λx)`` on ``[0, λmax]``, so that
    ``h(x) ≈ c_0/2 + Σ_{k≥1} c_k T_k(2x/λmax − 1)`` (PyGSP's convention). Closed form: with
    ``a = λ·λmax``, ``s = 1 + 1/a``, ``q = s − √(s²−1)``: ``c_k = 2(−q)^k / (a√(s²−1))``.

    ``anchored``: ``c_0`` is corrected so that the truncated series equals ``h(0) = 1`` exactly
    at ``x = 0``: the polynomial gains the constant ``Σ_{k>order} c_k(−1)^k`` (the dropped tail's
    value at 0, where that tail is largest: its terms ``c_k(−1)^k ∝ q^k`` all have one sign)."""
    a = lam * lmax  # (2λ)·(λmax/2)
    root = jnp.sqrt((1.0 / a) * (2.0 + 1.0 / a))  # √(s²−1), without cancellation
    q = 1.0 + 1.0 / a - root
    k = jnp.arange(order + 1)
    c = 2.0 / (a * root) * (-q) ** k
    if anchored:
        # p(0) = c_0/2 + Σ_{k=1}^{n} c_k (−1)^k; make it 1
        p0 = 0.5 * c[0] + jnp.sum(c[1:] * (-1.0) ** k[1:])
        c = c.at[0].add(2.0 * (1.0 - p0))
    return c


def _semi_iterative(lap, lam, lmax, y, order):
    """Chebyshev semi-iterative method for ``(I + 2λℒ)x = y`` on the spectrum ``[1, 1+2λλmax]``
    (Saad, *Iterative Methods for Sparse Linear Systems*, Alg. 12.1), ``order`` products ℒv."""
    alpha, beta = 1.0, 1.0 + 2.0 * lam * lmax
    theta, delta = (beta + alpha) / 2.0, (beta - alpha) / 2.0
    sigma = theta / delta
    rho = 1.0 / sigma
    d = y / theta
    x = d
    r = y

    def body(_, carry):
        x, r, d, rho = carry
        r = r - (d + 2.0 * lam * lap.matvec(d))
        rho_next = 1.0 / (2.0 * sigma - rho)
        d = (rho_next * rho) * d + (2.0 * rho_next / delta) * r
        return x + d, r, d, rho_next

    x, *_ = jax.lax.fori_loop(0, order, body, (x, r, d, rho))
    return x


def _series(lap, lam, lmax, y, order, anchored):
    """Truncated Chebyshev series of ``1/(1+2λx)`` on ``[0, λmax]``, ``order`` products ℒv."""
    c = chebyshev_series_coefficients(lam, lmax, order, anchored).astype(y.dtype)

    def shifted(v):  # (2/λmax) ℒ − I maps [0, λmax] onto [−1, 1]
        return (2.0 / lmax) * lap.matvec(v) - v

    t_prev, t_cur = y, shifted(y)
    out = 0.5 * c[0] * t_prev + c[1] * t_cur

    def body(k, carry):
        t_prev, t_cur, out = carry
        t_next = 2.0 * shifted(t_cur) - t_prev
        return t_cur, t_next, out + c[k] * t_next

    *_, out = jax.lax.fori_loop(2, order + 1, body, (t_prev, t_cur, out))
    return out


@dataclasses.dataclass(frozen=True)
class _MattingProx:
    """The static part of the prox (hashable, compared by value: equal for every image)."""

    order: int
    method: str

    def __call__(self, lap: MattingLaplacian, lam, lmax, y):
        if y.ndim not in (3, 4) or y.shape[-1] != 3:
            raise ValueError(f"the matting prox needs (H,W,3) or (B,H,W,3), got {y.shape}")
        lam = lam.astype(y.dtype)
        lmax = lmax.astype(y.dtype)
        if self.order == 0:
            return y
        if self.method == "semi":
            return _semi_iterative(lap, lam, lmax, y, self.order)
        return _series(lap, lam, lmax, y, self.order, self.method == "anchored")


def matting_prox(
    x_c,
    lam: float = 50.0,
    order: int | None = None,
    lmax: float | None = None,
    *,
    eps: float = 1e-7,
    method: str = "anchored",
    form: str = "stencil",
) -> Partial:
    """``Y ↦ (I + 2λℒ)⁻¹ Y`` for the matting Laplacian ℒ of ``x_c``, by a Chebyshev polynomial
    in ℒ (see the module docstring). ``Y``: ``(H,W,3)`` or ``(B,H,W,3)`` (same ℒ for all).

    Args:
      x_c: content ``(H,W,3)`` in [0,1], or a :class:`MattingLaplacian` already built.
      lam: λ_L (50 in the paper). A pytree leaf, like ℒ's coefficients.
      order: polynomial degree = number of products ℒv (0: the identity); default
        :func:`default_order` (63 at λ = 50: relative error ~1.5e-3 for a stylised-like ``Y``,
        ~5e-3 for an unrelated photo). Static (one compiled program per order).
      lmax: upper end of the spectrum interval; default the proven bound 9 (tight).
      eps: ε of the Laplacian (ignored when ``x_c`` is a Laplacian).
      method: ``"anchored"`` (default: Chebyshev series of ``1/(1+2λx)`` made exact at 0),
        ``"series"`` (plain truncated series) or ``"semi"`` (Chebyshev semi-iterative method
        for ``(I+2λℒ)x = Y``, with a guaranteed error bound but ~1.3× the order).
      form: ``"stencil"`` or ``"bcoo"`` (when building ℒ here).

    Returns:
      a ``jax.tree_util.Partial`` whose leaves are ℒ's arrays, λ and λmax; a new content of the
      same size gives the same treedef, so a jitted function taking the prox does not retrace.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    lap = x_c if isinstance(x_c, MattingLaplacian) else matting_laplacian(x_c, eps, form)
    lmax = LMAX_BOUND if lmax is None else float(lmax)
    if order is None:
        order = default_order(float(lam), lmax)
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    return Partial(
        _MattingProx(int(order), method),
        lap,
        jnp.asarray(lam, jnp.float32),
        jnp.asarray(lmax, jnp.float32),
    )
