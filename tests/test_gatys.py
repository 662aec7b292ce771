"""flexsolver.gatys: the slow reference minimises LTV like scipy's L-BFGS does, compiling once."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import flexsolver as fs
from tests.helpers import count_compilations, sample_image

gatys_module = importlib.import_module("flexsolver.gatys")


@pytest.fixture(scope="module")
def problem(vgg):
    x_c = sample_image("astronaut", (32, 32))
    grams = fs.style_grams(vgg, sample_image("coffee", (32, 32)))
    return x_c, grams


def test_lbfgs_reaches_scipy_lbfgs_and_compiles_once(vgg, problem):
    x_c, grams = problem
    steps = 30
    with count_compilations(gatys_module._step) as compiled:
        x, losses = fs.gatys(vgg, x_c, grams, steps=steps, return_losses=True)
    assert compiled.count == 1
    ours = float(fs.ltv(vgg, x, x_c, grams))
    start = float(fs.ltv(vgg, x_c, x_c, grams))
    assert losses[0] == pytest.approx(start, rel=1e-5)

    fun = jax.jit(jax.value_and_grad(lambda y: fs.ltv(vgg, y.reshape(x_c.shape), x_c, grams)))

    def value_and_grad(flat):
        v, g = fun(jnp.asarray(flat, jnp.float32))
        return float(v), np.asarray(g, np.float64).ravel()

    ref = scipy.optimize.minimize(value_and_grad, np.asarray(x_c, np.float64).ravel(), jac=True,
                                  method="L-BFGS-B", options={"maxiter": steps, "maxcor": 10})
    theirs = float(fs.ltv(vgg, jnp.clip(ref.x.reshape(x_c.shape), 0, 1).astype(np.float32), x_c, grams))
    assert ours < 0.5 * start
    assert ours < 1.25 * theirs, (ours, theirs)


def test_proximal_adam_stays_in_the_box(vgg, problem):
    x_c, grams = problem
    x = fs.gatys(vgg, x_c, grams, steps=5, method="adam", prox=fs.clip(0.2, 0.8))
    assert float(x.min()) >= 0.2 - 1e-6 and float(x.max()) <= 0.8 + 1e-6
    with pytest.raises(ValueError, match="method"):
        fs.gatys(vgg, x_c, grams, method="sgd")
