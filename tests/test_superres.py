"""The ×3 degradation, its adjoint, the CG data-term prox and the colour helpers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flexsolver import color
from flexsolver import superres as sr
from flexsolver.images import psnr


@pytest.mark.parametrize("shape", [(27, 30), (31, 40, 3), (2, 36, 24, 1)])
def test_adjoint(shape):
    k1, k2 = jax.random.split(jax.random.PRNGKey(sum(shape)))
    x = jax.random.normal(k1, shape)
    dx = sr.degrade(x)
    hw = shape[:2] if len(shape) <= 3 else shape[1:3]
    assert dx.shape[(0 if len(shape) <= 3 else 1) :][:2] == sr.low_shape(hw)
    y = jax.random.normal(k2, dx.shape)
    dty = sr.degrade_adjoint(y, hw)
    assert dty.shape == x.shape
    lhs, rhs = float(jnp.vdot(dx, y)), float(jnp.vdot(x, dty))
    scale = float(jnp.linalg.norm(dx) * jnp.linalg.norm(y))
    assert abs(lhs - rhs) <= 1e-5 * scale


def test_low_shape_multiple_of_three():
    assert sr.degrade(jnp.zeros((48, 63))).shape == (16, 21)
    assert sr.bicubic_upsample(jnp.zeros((16, 21))).shape == (48, 63)


def test_constant_preserved():
    x = jnp.full((30, 24, 2), 0.37)
    np.testing.assert_allclose(np.asarray(sr.degrade(x)), 0.37, rtol=1e-5)
    assert abs(sr.gaussian_kernel_1d().sum() - 1) < 1e-6


def _rhs_and_op(x_low, lam, y):
    shape = y.shape[-3:-1]
    low = jnp.broadcast_to(x_low, sr.degrade(y).shape)
    b = y + 2 * lam * sr.degrade_adjoint(low, shape)
    return b, lambda v: v + 2 * lam * sr.degrade_adjoint(sr.degrade(v), shape)


def _objective(x, y, x_low, lam):
    return 0.5 * jnp.sum((x - y) ** 2) + lam * jnp.sum((jnp.broadcast_to(x_low, sr.degrade(x).shape) - sr.degrade(x)) ** 2)


def test_prox_normal_equations_and_argmin():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    gt = jax.random.uniform(k1, (45, 36, 1))
    x_low = sr.degrade(gt)
    y = sr.bicubic_upsample(x_low) + 0.1 * jax.random.normal(k2, gt.shape)
    lam, tol = 50.0, 1e-5
    x = sr.superres_prox(x_low, lam, tol=tol)(y)
    b, op = _rhs_and_op(x_low, lam, y)
    assert float(jnp.linalg.norm(op(x) - b) / jnp.linalg.norm(b)) <= 10 * tol
    f = _objective(x, y, x_low, lam)
    assert f < _objective(y, y, x_low, lam)
    for k in jax.random.split(k3, 3):
        assert f < _objective(x + 1e-2 * jax.random.normal(k, x.shape), y, x_low, lam)
    # data consistency improves a lot
    assert jnp.linalg.norm(sr.degrade(x) - x_low) < 0.5 * jnp.linalg.norm(sr.degrade(y) - x_low)


def test_luminance_prox_on_three_channels():
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    gt = jax.random.uniform(k1, (36, 36))
    x_low = sr.degrade(gt)
    y = jax.random.uniform(k2, (1, 36, 36, 3))
    x = sr.luminance_superres_prox(x_low)(y)
    assert x.shape == y.shape
    np.testing.assert_allclose(np.asarray(x[..., 0]), np.asarray(x[..., 2]), atol=1e-6)
    # equals the scalar prox of the channel mean
    ref = sr.superres_prox(x_low)(jnp.mean(y, -1)[0])
    np.testing.assert_allclose(np.asarray(x[0, ..., 0]), np.asarray(ref), atol=1e-4)


def test_ycbcr_round_trip():
    x = jax.random.uniform(jax.random.PRNGKey(2), (5, 7, 3))
    np.testing.assert_allclose(np.asarray(color.ycbcr_to_rgb(color.rgb_to_ycbcr(x))), np.asarray(x), atol=1e-5)
    ycc = color.rgb_to_ycbcr(jnp.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(np.asarray(ycc), [[1, 0.5, 0.5], [0, 0.5, 0.5], [0.299, 0.5 - 0.168736, 1.0]], atol=1e-5)
    np.testing.assert_allclose(np.asarray(color.luminance(x)), np.asarray(color.rgb_to_ycbcr(x)[..., 0]))


def test_psnr():
    ref = np.zeros((4, 4))
    assert psnr(ref, ref) == float("inf")
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0)
    assert psnr(jnp.full((4, 4), 2.0), ref, peak=2.0) == pytest.approx(0.0, abs=1e-9)


def test_luminance_prox_is_compose_of_grey_and_superres():
    from flexsolver.prox import compose

    prox = sr.luminance_superres_prox(jnp.zeros((10, 10)))
    same = compose(sr.grey_projection, sr.superres_prox(jnp.ones((10, 10))))
    assert jax.tree_util.tree_structure(prox) == jax.tree_util.tree_structure(same)


def test_prox_is_pytree_without_retrace():
    traces = []

    @jax.jit
    def apply(prox, y):
        traces.append(1)
        return prox(y)

    y = jnp.zeros((1, 30, 30, 3))
    for seed in range(3):
        x_low = jax.random.uniform(jax.random.PRNGKey(seed), (10, 10))
        out = apply(sr.luminance_superres_prox(x_low, lam=10.0 + seed), y)
        assert out.shape == y.shape
    assert len(traces) == 1
    assert len(jax.tree_util.tree_leaves(sr.superres_prox(jnp.zeros((10, 10))))) == 2


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        sr.degrade(jnp.zeros((5,)))
    with pytest.raises(ValueError):
        sr.degrade_adjoint(jnp.zeros((4, 4)), (30, 30))
