"""The matting Laplacian and its Chebyshev prox (SPEC §4.1) against pymatting and scipy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
from tests.helpers import sample_image

from flexsolver import prox as proxlib
from flexsolver.matting import (
    LMAX_BOUND,
    MattingLaplacian,
    chebyshev_series_coefficients,
    default_order,
    laplacian_to_scipy,
    matting_laplacian,
    matting_prox,
)
from flexsolver.matting import _series as series_filter


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _stylised_like(content: np.ndarray, seed: int = 0) -> np.ndarray:
    h, w, _ = content.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ramp = np.stack([0.3 * yy, -0.2 * xx, 0.25 * (xx - yy)], axis=-1)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(content.shape)
    return (content + ramp + noise).astype(np.float32)


def _exact(lap: MattingLaplacian, y: np.ndarray, lam: float) -> np.ndarray:
    h, w, c = y.shape
    a = scipy.sparse.identity(h * w, format="csc") + 2.0 * lam * laplacian_to_scipy(lap)
    lu = scipy.sparse.linalg.splu(a.tocsc())
    return lu.solve(y.reshape(h * w, c).astype(np.float64)).reshape(h, w, c)


@pytest.fixture(scope="module")
def astronaut():
    return sample_image("astronaut", (64, 80))


@pytest.fixture(scope="module")
def chelsea_case():
    content = sample_image("chelsea", (96, 128))
    lap = matting_laplacian(content)
    y = _stylised_like(content)
    return content, lap, y, _exact(lap, y, 50.0)


def test_matches_pymatting(astronaut):
    cf_laplacian = pytest.importorskip("pymatting").cf_laplacian
    ref = cf_laplacian(astronaut.astype(np.float64), epsilon=1e-7, radius=1)
    lap = matting_laplacian(astronaut, eps=1e-7)
    v = np.random.default_rng(1).standard_normal((64, 80, 3)).astype(np.float32)
    expected = (ref @ v.reshape(-1, 3).astype(np.float64)).reshape(v.shape)
    assert _rel(lap.matvec(jnp.asarray(v)), expected) <= 1e-5
    # the assembled matrix too (entries are O(1), float32 storage)
    assert abs(laplacian_to_scipy(lap) - ref).max() <= 1e-4
    # a real signal, not only noise: ℒ applied to the image itself is small and must match
    expected_img = (ref @ astronaut.reshape(-1, 3).astype(np.float64)).reshape(astronaut.shape)
    got_img = lap.matvec(jnp.asarray(astronaut))
    assert np.abs(np.asarray(got_img) - expected_img).max() <= 1e-4


def test_stencil_and_bcoo_agree(astronaut):
    lap = matting_laplacian(astronaut)
    lap_b = matting_laplacian(astronaut, form="bcoo")
    assert lap.form == "stencil" and lap_b.form == "bcoo"
    rng = np.random.default_rng(2)
    for shape in [(64, 80), (64, 80, 3), (2, 64, 80, 3)]:
        v = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
        a, b = lap.matvec(v), lap_b.matvec(v)
        assert a.shape == b.shape == v.shape
        assert _rel(a, b) <= 1e-6
    # round trip of the representation
    np.testing.assert_allclose(lap_b.to_stencil().coeffs, lap.coeffs, atol=1e-7)
    # batch: every image gets the same ℒ
    v = jnp.asarray(rng.standard_normal((2, 64, 80, 3)).astype(np.float32))
    np.testing.assert_allclose(lap.matvec(v)[1], lap.matvec(v[1]), rtol=1e-6, atol=1e-6)


def test_symmetric_psd_and_kills_constants(astronaut):
    lap = matting_laplacian(astronaut)
    mat = laplacian_to_scipy(lap)
    assert abs(mat - mat.T).max() <= 1e-6
    assert mat.nnz <= 25 * mat.shape[0]
    ones = jnp.ones((64, 80, 3))
    assert float(jnp.abs(lap.matvec(ones)).max()) <= 1e-5
    rng = np.random.default_rng(3)
    v = rng.standard_normal((64 * 80, 8))
    quad = np.einsum("ij,ij->j", v, mat @ v)
    assert quad.min() >= -1e-6 * np.einsum("ij,ij->j", v, v).max()
    # the spectrum bound used by the prox: λmax ≤ 9 (tight), Gershgorin is looser
    top = scipy.sparse.linalg.eigsh(mat, k=1, which="LA", return_eigenvectors=False, tol=1e-3)
    assert top[0] <= LMAX_BOUND + 1e-4


def test_prox_matches_exact_solve(chelsea_case):
    content, lap, y, exact = chelsea_case
    prox = matting_prox(content)  # default λ = 50, default order
    out = jax.jit(lambda p, v: p(v))(prox, jnp.asarray(y))
    assert out.shape == y.shape and out.dtype == jnp.float32
    assert _rel(out, exact) <= 1e-2
    # from a prebuilt Laplacian, as a batch: the same operator on each image
    prox2 = matting_prox(lap)
    batch = jnp.stack([jnp.asarray(y), jnp.asarray(content)])
    out2 = jax.jit(lambda p, v: p(v))(prox2, batch)
    np.testing.assert_allclose(out2[0], out, atol=1e-5)
    # constants (ℒ's null space) pass through exactly, as in the exact prox
    flat = prox(jnp.full(y.shape, 0.3, jnp.float32))
    np.testing.assert_allclose(flat, 0.3, atol=1e-5)
    # more order, less error
    err_hi = _rel(matting_prox(lap, order=2 * default_order(50.0))(jnp.asarray(y)), exact)
    assert err_hi < _rel(out, exact)
    # the semi-iterative method honours its guarantee ‖x_n − x‖ ≤ ‖x‖ / T_{n+1}(1 + 1/(λλmax))
    n = 40
    bound = 1.0 / np.cosh((n + 1) * np.arccosh(1.0 + 1.0 / (50.0 * LMAX_BOUND)))
    err_semi = _rel(matting_prox(lap, order=n, method="semi")(jnp.asarray(y)), exact)
    assert err_semi <= bound * 1.001
    err_series = _rel(matting_prox(lap, order=n, method="series")(jnp.asarray(y)), exact)
    err_anchored = _rel(matting_prox(lap, order=n)(jnp.asarray(y)), exact)
    assert err_anchored < err_series < err_semi


def test_series_coefficients_match_pygsp():
    pytest.importorskip("pygsp")
    from pygsp import filters, graphs

    graph = graphs.Path(16)
    graph.estimate_lmax()
    lam, order = 5.0, 12
    kernel = filters.Filter(graph, lambda x: 1.0 / (1.0 + 2.0 * lam * x))
    ref = filters.approximations.compute_cheby_coeff(kernel, m=order, N=4000)
    with jax.enable_x64(True):
        ours = np.asarray(chebyshev_series_coefficients(jnp.float64(lam), graph.lmax, order))
    np.testing.assert_allclose(ours, ref, atol=1e-8)
    # the recurrence: the same filter as PyGSP's cheby_op
    dense = jnp.asarray(graph.L.toarray(), jnp.float32)

    class Dense:
        def matvec(self, v):
            return dense @ v

    signal = np.random.default_rng(4).standard_normal(16)
    expected = filters.approximations.cheby_op(graph, ref, signal)
    got = series_filter(Dense(), jnp.float32(lam), jnp.float32(graph.lmax),
                        jnp.asarray(signal, jnp.float32), order, False)  # fmt: skip
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_composes_and_does_not_retrace(chelsea_case):
    content, _, y, _ = chelsea_case
    other = sample_image("coffee", content.shape[:2])
    traces = []

    @jax.jit
    def apply(prox, v):
        traces.append(1)  # runs only while tracing
        return prox(v)

    p1 = proxlib.compose(matting_prox(content), proxlib.clip())
    p2 = proxlib.compose(matting_prox(other), proxlib.clip())
    out1 = apply(p1, jnp.asarray(y))
    out2 = apply(p2, jnp.asarray(y))
    assert len(traces) == 1
    assert float(out1.min()) >= 0.0 and float(out1.max()) <= 1.0
    assert not np.allclose(out1, out2)  # the data did change
    # compose order: matting then clip
    np.testing.assert_allclose(out1, jnp.clip(matting_prox(content)(jnp.asarray(y)), 0, 1),
                               atol=1e-5)  # fmt: skip
    # another λ is data too, not a new program (same order)
    apply(matting_prox(content, lam=20.0, order=default_order(50.0)), jnp.asarray(y))
    apply(matting_prox(content), jnp.asarray(y))
    assert len(traces) == 2  # the un-composed treedef is a second program, no more


def test_rejects_bad_input(astronaut):
    with pytest.raises(ValueError):
        matting_laplacian(astronaut[..., :2])
    with pytest.raises(ValueError):
        matting_prox(astronaut, method="nope")
    lap = matting_laplacian(astronaut)
    with pytest.raises(ValueError):
        lap.matvec(jnp.zeros((10, 10, 3)))
