"""The unrolled solver: identities of SPEC §2/§4, restructuring, proxes, tracing, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.tree_util import Partial

import flexsolver as fs
from flexsolver.network import heaviside, init_iteration, param_count
from flexsolver.network import iteration as _iteration
from tests.helpers import count_compilations, sample_image

N, L = 2, 4
iteration = jax.jit(_iteration, static_argnames="nonlinearity")  # one compile per call shape
OFF = {name: 0.0 for name in fs.STYLE_LAYERS}


@pytest.fixture(scope="module")
def setup(vgg):
    params = fs.init_params(jax.random.PRNGKey(0), n=N, l=L)
    x_c = sample_image("astronaut", (40, 50))  # not a multiple of 16
    g1 = fs.style_grams(vgg, sample_image("coffee", (48, 64)))
    g2 = fs.style_grams(vgg, sample_image("chelsea", (48, 64)))
    return params, x_c, g1, g2


def test_param_count_formula():
    for n, l in ((1, 4), (3, 8), (4, 64)):
        shapes = jax.eval_shape(lambda: fs.init_params(jax.random.PRNGKey(1), n=n, l=l))  # noqa: B023
        assert sum(p.size for p in jax.tree.leaves(shapes)) == param_count(n, l)
    # Forward convs, 1×1 filters and one backward chain per scale, by hand for L=1:
    # c = (3,1,2,4,8,8), C = (64,128,256,512,512).
    c = (3, 1, 2, 4, 8, 8)
    fwd = sum(9 * c[k - 1] * c[k] + c[k] for k in range(1, 6))
    filt = 2 * (64 * 1 + 128 * 2 + 256 * 4 + 512 * 8 + 512 * 8)
    bwd = sum(9 * c[j] * c[j - 1] for k in range(1, 6) for j in range(1, k + 1))
    assert param_count(1, 1) == fwd + filt + bwd


def test_zero_style_weights_return_content_exactly(setup):
    params, x_c, g1, _ = setup
    out = fs.solve(params, x_c, g1, style_weights=OFF)
    np.testing.assert_array_equal(np.asarray(out), x_c)
    assert not np.allclose(np.asarray(fs.solve(params, x_c, g1)), x_c)


def test_shapes_single_batch_and_return_all(setup):
    params, x_c, g1, _ = setup
    single = fs.solve(params, x_c, g1)
    assert single.shape == x_c.shape
    batch = fs.solve(params, np.stack([x_c, x_c[::-1]]), g1)
    assert batch.shape == (2, *x_c.shape)
    np.testing.assert_allclose(batch[0], single, rtol=1e-5, atol=1e-5)
    steps = fs.solve(params, x_c, g1, return_all=True)
    assert len(steps) == N
    np.testing.assert_array_equal(steps[-1], single)


def test_clip_prox_bounds_output(setup):
    params, x_c, g1, _ = setup
    params = jax.tree.map(lambda p: 20 * p, params)  # large updates leave [0,1]
    free = np.asarray(fs.solve(params, x_c, g1))
    assert free.min() < 0 or free.max() > 1
    out = np.asarray(fs.solve(params, x_c, g1, prox=fs.clip(0.0, 1.0)))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_compose_is_left_to_right():
    p = Partial(lambda y: y * 2.0)
    q = Partial(lambda y: y + 1.0)
    y = jnp.arange(3.0)
    np.testing.assert_array_equal(fs.compose(p, q)(y), q(p(y)))
    np.testing.assert_array_equal(fs.compose(q, p)(y), p(q(y)))
    np.testing.assert_array_equal(fs.compose(fs.identity, p)(y), p(y))
    np.testing.assert_array_equal(fs.compose(lambda v: v - 1.0, fs.clip(0.0, 1.0))(y), np.clip(y - 1, 0, 1))


def test_mixing_first_style_alone(setup):
    params, x_c, g1, g2 = setup
    mixed = fs.mix_grams([g1, g2], [1.0, 0.0])
    np.testing.assert_allclose(fs.solve(params, x_c, mixed), fs.solve(params, x_c, g1), rtol=1e-6, atol=1e-6)


def test_all_ones_mask_is_no_mask(setup):
    params, x_c, g1, _ = setup
    ones = np.ones(x_c.shape[:2], np.float32)
    np.testing.assert_allclose(
        fs.solve(params, x_c, [g1], masks=[ones]), fs.solve(params, x_c, g1), rtol=1e-5, atol=1e-6
    )


def test_two_masks_sum_of_masked_updates(vgg, setup):
    """One iteration with two complementary masks = sum of each style's masked update."""
    params, x_c, g1, g2 = setup
    p0 = params.params["iterations"][0]
    x = jnp.asarray(sample_image("astronaut", (32, 48)))[None]
    left = np.zeros((32, 48), np.float32)
    left[:, :20] = 1
    right = 1 - left
    w = {k: 1.0 for k in fs.STYLE_LAYERS}
    both = iteration(p0, x, [g1, g2], w, [left, right])
    first = iteration(p0, x, [g1], w, [left])
    second = iteration(p0, x, [g2], w, [right])
    np.testing.assert_allclose(both, first + second, rtol=1e-4, atol=1e-6)
    # and the regions really differ from one style everywhere
    assert not np.allclose(both, iteration(p0, x, [g1], w, None), atol=1e-6)


def test_style_weights_are_linear(setup):
    """g_t is linear in β: intensity 0.5 on all scales halves each update of one iteration."""
    params, x_c, g1, _ = setup
    p0 = params.params["iterations"][0]
    x = jnp.asarray(x_c[:32, :48])[None]
    full = iteration(p0, x, [g1], {k: 1.0 for k in fs.STYLE_LAYERS}, None)
    half = iteration(p0, x, [g1], {k: 0.5 for k in fs.STYLE_LAYERS}, None)
    np.testing.assert_allclose(half, 0.5 * full, rtol=1e-5, atol=1e-7)
    only = {k: (1.0 if k == "conv3_1" else 0.0) for k in fs.STYLE_LAYERS}
    dropped = {k: 1.0 for k in fs.STYLE_LAYERS if k != "conv3_1"}
    np.testing.assert_allclose(
        iteration(p0, x, [g1], only, None) + iteration(p0, x, [g1], dropped, None), full, rtol=1e-4, atol=1e-6
    )


def test_traces_once_for_new_prox_data_style_and_content(vgg, setup):
    params, x_c, g1, g2 = setup
    traces = []

    def shift(offset, y):
        traces.append(1)  # runs only while tracing
        return y + offset

    from flexsolver import solver

    with count_compilations(solver._solve) as compiled:
        fs.solve(params, x_c, g1, prox=Partial(shift, jnp.float32(0.1)))
        fs.solve(params, x_c, g2, prox=Partial(shift, jnp.float32(0.2)))
        fs.solve(params, x_c[::-1].copy(), g2, prox=Partial(shift, jnp.float32(0.3)))
    assert compiled.count == 1
    assert len(traces) == N  # one trace: the prox is called once per unrolled iteration


def test_gradient_reaches_every_parameter(vgg, setup):
    params, x_c, g1, _ = setup

    def loss(p):
        out = fs.solve(p, x_c, g1, prox=fs.clip(0.0, 1.0), return_all=True)
        return sum(jnp.sum((o - 0.5) ** 2) for o in out)

    grads = jax.grad(loss)(params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert float(jnp.abs(g).max()) > 0, jax.tree_util.keystr(path)


def test_no_gradient_through_the_heaviside_gate():
    a = jnp.linspace(-1.0, 1.0, 11)
    np.testing.assert_array_equal(heaviside(a), (np.asarray(a) > 0).astype(np.float32))
    assert float(jnp.abs(jax.grad(lambda v: jnp.sum(heaviside(v) * v**2))(a) - 2 * a * heaviside(a)).max()) == 0.0


def test_update_is_linear_in_the_style_filter_with_the_gate():
    """With the gate, the backward maps are linear in D (the gates do not depend on it), as
    back-propagation is: doubling G doubles the update; the ReLU ablation is not linear."""
    p = init_iteration(jax.random.PRNGKey(3), 4)
    x = jax.random.uniform(jax.random.PRNGKey(4), (1, 32, 32, 3))
    grams = {k: jnp.eye(c) for k, c in zip(fs.STYLE_LAYERS, (64, 128, 256, 512, 512))}
    w = {"conv2_1": 1.0, "conv4_1": 1.0}

    def update(scale, nonlinearity):
        q = {**p, "filters": [{"g": f["g"] * scale, "h": f["h"]} for f in p["filters"]]}
        return iteration(q, x, [grams], w, None, nonlinearity)

    np.testing.assert_allclose(update(-2.0, "heaviside"), -2.0 * update(1.0, "heaviside"), rtol=1e-4, atol=1e-7)
    assert not np.allclose(update(-2.0, "relu"), -2.0 * update(1.0, "relu"), rtol=1e-3, atol=1e-7)


def test_relu_ablation_differs(setup):
    params, x_c, g1, _ = setup
    a = fs.solve(params, x_c, g1)
    b = fs.solve(params.params, x_c, g1, nonlinearity="relu")  # the same weights through the other gate
    assert a.shape == b.shape and not np.allclose(a, b)
    with pytest.raises(ValueError):
        fs.solve(params.params, x_c, g1, nonlinearity="tanh")


def test_bad_arguments(setup):
    params, x_c, g1, g2 = setup
    with pytest.raises(ValueError, match="mask"):
        fs.solve(params, x_c, [g1, g2])
    with pytest.raises(ValueError, match="masks"):
        fs.solve(params, x_c, [g1, g2], masks=[np.ones(x_c.shape[:2])])
    with pytest.raises(ValueError, match="match"):
        fs.solve(params, x_c, [g1], masks=[np.ones((3, 3))])
    with pytest.raises(ValueError, match="unknown"):
        fs.solve(params, x_c, g1, style_weights={"conv9_1": 1.0})


def test_solver_carries_its_gate(setup):
    """A Solver runs with the gate it was trained with; another gate given with it is an error."""
    params, x_c, g1, _ = setup
    assert (params.n, params.l, params.nonlinearity) == (N, L, "heaviside")
    x = x_c[:32, :48]
    as_solver = fs.solve(params, x, g1)
    np.testing.assert_array_equal(as_solver, fs.solve(params.params, x, g1, nonlinearity="heaviside"))
    relu = fs.init_params(jax.random.PRNGKey(0), n=N, l=L, nonlinearity="relu")
    np.testing.assert_array_equal(fs.solve(relu, x, g1), fs.solve(relu.params, x, g1, nonlinearity="relu"))
    assert not np.allclose(fs.solve(relu, x, g1), as_solver)
    with pytest.raises(ValueError, match="trained with the 'relu' gate"):
        fs.solve(relu, x, g1, nonlinearity="heaviside")
