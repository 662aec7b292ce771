"""``conv3x3`` (the CPU lowerings: SAME-then-crop with its custom VJP, Winograd with its own, and
products then shifted sums for a thin output or a thin input's gradient) and ``conv3x3_sum`` against PyTorch's conv2d and XLA's own conv."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flexsolver.conv import (
    THIN,
    THIN_PRODUCT_MIN,
    WINOGRAD_MIN,
    WINOGRAD_MIN_FORWARD,
    WINOGRAD_MIN_TILES,
    WINOGRAD4_MIN_TILES,
    conv3x3,
    conv3x3_reference,
    conv3x3_sum,
    conv3x3_winograd,
)

# (B, H, W, C_in, C_out): odd and even sizes, 2-pixel sides (the smallest reflection allows), a
# thin output (XLA's weight gradient) and a wide one (the per-tap products).
DIRECT = [(2, 7, 9, 3, 5), (1, 2, 3, 4, 1), (3, 16, 11, 6, THIN + 3), (1, 13, 13, 32, 3)]
# Winograd with its gradients (odd sides: a zero row and column of tiles), and Winograd without
# gradients too (C_in ≥ WINOGRAD_MIN_FORWARD on 4·WINOGRAD_MIN_TILES tiles).
# Under differentiation the first uses F(2×2,3×3), the others F(4×4,3×3) (at least
# WINOGRAD4_MIN_TILES 4×4 tiles; odd sides, not multiples of 4).
WINOGRAD = [
    (2, 23, 25, WINOGRAD_MIN, WINOGRAD_MIN + 1),
    (1, 63, 64, WINOGRAD_MIN_FORWARD, WINOGRAD_MIN),
    (4, 63, 61, WINOGRAD_MIN, WINOGRAD_MIN),
]
assert 2 * 12 * 13 >= WINOGRAD_MIN_TILES and 32 * 32 >= 4 * WINOGRAD_MIN_TILES
assert 2 * 6 * 7 < WINOGRAD4_MIN_TILES <= 16 * 16
# A thin output from many channels: products, then the sum of nine shifted slices.
PRODUCT = [(2, 9, 7, THIN_PRODUCT_MIN, 3)]
# A thin input into many channels (VGG's conv1_1): direct, its input gradient by products.
THIN_INPUT = [(2, 7, 10, 3, THIN_PRODUCT_MIN)]
SHAPES = DIRECT + WINOGRAD + PRODUCT + THIN_INPUT


def _data(shape, seed=0):
    b, h, w, c_in, c_out = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, h, w, c_in)).astype(np.float32)
    k = rng.standard_normal((3, 3, c_in, c_out)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    cot = rng.standard_normal((b, h, w, c_out)).astype(np.float32)
    return x, k, bias, cot


def _vjp(fn, x, k, bias, cot):
    y, pullback = jax.vjp(fn, jnp.asarray(x), jnp.asarray(k), jnp.asarray(bias))
    return (y, *pullback(jnp.asarray(cot)))


@pytest.mark.torch
@pytest.mark.parametrize("padding", ["reflect", "zero"])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch_values_and_gradients(shape, padding):
    torch = pytest.importorskip("torch")
    x, k, bias, cot = _data(shape)
    ours = jax.jit(lambda *a: _vjp(lambda x, k, b: conv3x3(x, k, b, padding), *a))(x, k, bias, cot)

    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).double().requires_grad_()
    kt = torch.from_numpy(k.transpose(3, 2, 0, 1).copy()).double().requires_grad_()
    bt = torch.from_numpy(bias).double().requires_grad_()
    mode = "reflect" if padding == "reflect" else "constant"
    yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (1, 1, 1, 1), mode=mode), kt, bt)
    yt.backward(torch.from_numpy(cot.transpose(0, 3, 1, 2).copy()).double())
    theirs = [
        yt.detach().numpy().transpose(0, 2, 3, 1),
        xt.grad.numpy().transpose(0, 2, 3, 1),
        kt.grad.numpy().transpose(2, 3, 1, 0),
        bt.grad.numpy(),
    ]
    # F(4×4,3×3) (WINOGRAD[1:] under differentiation) rounds ~5× more than float32's direct sums.
    tol = 3e-5 if shape in WINOGRAD[1:] else 1e-5
    for name, a, b in zip(("y", "dx", "dw", "db"), ours, theirs):
        scale = np.abs(b).max()
        assert np.abs(np.asarray(a) - b).max() <= tol * scale, name


@pytest.mark.parametrize("padding", ["reflect", "zero"])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_lax_conv(shape, padding):
    """SAME-then-crop values are bit-identical to the pad-then-VALID form; Winograd's values and
    every gradient agree to float32 rounding."""
    x, k, bias, cot = _data(shape, seed=1)
    run = lambda fn: jax.jit(lambda *a: _vjp(fn, *a))(x, k, bias, cot)  # noqa: E731
    ours = run(lambda x, k, b: conv3x3(x, k, b, padding))
    ref = run(lambda x, k, b: conv3x3_reference(x, k, padding) + b)
    forward = jax.jit(lambda x, k: conv3x3(x, k, padding=padding))(x, k)  # undifferentiated
    if shape in DIRECT + THIN_INPUT:
        np.testing.assert_array_equal(ours[0], ref[0])
        np.testing.assert_array_equal(forward + bias, ref[0])
    # F(4×4,3×3)'s transforms have larger constants (up to 8): float32 rounding is ~5× larger.
    tol = 1e-5 if shape in WINOGRAD[1:] else 2e-6
    for a, b in zip((ours[0], forward + bias, *ours[1:]), (ref[0], ref[0], *ref[1:])):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol * float(jnp.abs(b).max()))


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("padding", ["reflect", "zero"])
def test_winograd_on_its_own(padding, m):
    """``conv3x3_winograd`` with 2×2 and 4×4 tiles on any shape, even below the thresholds:
    1-pixel tiles, odd sides, sides that are not a multiple of the tile."""
    for shape in [(1, 2, 2, 1, 1), (2, 5, 3, 3, 4), (1, 9, 8, 7, 2), (1, 13, 6, 4, 3)]:
        x, k, _, cot = _data(shape, seed=2)
        y, pull = jax.vjp(lambda x, k: conv3x3_winograd(x, k, padding, m), jnp.asarray(x), jnp.asarray(k))
        y_ref, pull_ref = jax.vjp(lambda x, k: conv3x3_reference(x, k, padding), jnp.asarray(x), jnp.asarray(k))
        for a, b in zip((y, *pull(jnp.asarray(cot))), (y_ref, *pull_ref(jnp.asarray(cot)))):
            np.testing.assert_allclose(a, b, rtol=0, atol=(2e-6 if m == 2 else 1e-5) * float(jnp.abs(b).max()))


@pytest.mark.parametrize("padding", ["reflect", "zero"])
@pytest.mark.parametrize("widths", [(32, 40, 8), (5, 7)])
def test_sum_of_convolutions(widths, padding):
    """``conv3x3_sum`` equals XLA's conv of the concatenated inputs, values and gradients: a thin
    output from many channels in all (products, then shifted sums, no concatenation) and from few
    (the concatenated convolution)."""
    rng = np.random.default_rng(3)
    xs = [jnp.asarray(rng.standard_normal((2, 11, 6, c)), jnp.float32) for c in widths]
    ws = [jnp.asarray(rng.standard_normal((3, 3, c, 3)), jnp.float32) for c in widths]
    cot = jnp.asarray(rng.standard_normal((2, 11, 6, 3)), jnp.float32)
    ref = lambda xs, ws: conv3x3_reference(jnp.concatenate(xs, -1), jnp.concatenate(ws, 2), padding)  # noqa: E731
    ours = jax.jit(lambda xs, ws: jax.vjp(lambda *a: conv3x3_sum(*a, padding=padding), xs, ws))
    y, pull = ours(xs, ws)
    y_ref, pull_ref = jax.vjp(ref, xs, ws)
    for a, b in zip(jax.tree.leaves((y, pull(cot))), jax.tree.leaves((y_ref, pull_ref(cot)))):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * float(jnp.abs(b).max()))
    with pytest.raises(ValueError, match="as many kernels"):
        conv3x3_sum(xs, ws[:1])
    with pytest.raises(ValueError, match="one \\(B,H,W\\)"):
        conv3x3_sum([xs[0], xs[1][:, :5]], ws[:2])


@pytest.mark.parametrize("shape", [(1, 5, 6, 2, 9), WINOGRAD[0], PRODUCT[0], THIN_INPUT[0]])
def test_second_order_and_bad_input(shape):
    x, k, _, _ = _data(shape)
    # A Hessian-vector product, reverse over reverse, goes through the custom VJPs' own derivatives.
    f = lambda x: jnp.sum(jnp.tanh(conv3x3(x, jnp.asarray(k))) ** 2)  # noqa: E731
    g = lambda fn: jax.grad(lambda x: jnp.vdot(jax.grad(fn)(x), jnp.ones_like(x)))(jnp.asarray(x))  # noqa: E731
    f_ref = lambda x: jnp.sum(jnp.tanh(conv3x3_reference(x, jnp.asarray(k))) ** 2)  # noqa: E731
    np.testing.assert_allclose(g(f), g(f_ref), rtol=1e-4, atol=1e-4 * float(jnp.abs(g(f_ref)).max()))
    with pytest.raises(ValueError, match="padding"):
        conv3x3(x, k, padding="circular")
    with pytest.raises(ValueError, match="3,3,C_in,C_out"):
        conv3x3(x, k[:, :, :1])
    with pytest.raises(ValueError, match="tiles m"):
        conv3x3_winograd(x, k, m=3)
