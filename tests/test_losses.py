"""The loss of SPEC §1 against direct numpy computations, finite differences and definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flexsolver as fs
from flexsolver.losses import LOSS_LAYERS, resize_mask
from tests.helpers import sample_image

LAYERS = fs.STYLE_LAYERS


@pytest.fixture(scope="module")
def images():
    return sample_image("astronaut", (48, 64)), sample_image("coffee", (48, 64)), sample_image("chelsea", (40, 56))


def np_gram(f):
    f = np.asarray(f, np.float64).reshape(-1, f.shape[-1])
    return f.T @ f / f.shape[0]


def np_ltv(vgg, x, x_c, x_s, betas):
    """LTV written out from SPEC §1 in float64 numpy, from VGG features only."""
    x = np.clip(x, 0, 1)
    fx = {k: np.asarray(v, np.float64) for k, v in fs.vgg_features(vgg, x, LOSS_LAYERS).items()}
    fc = np.asarray(fs.vgg_features(vgg, x_c, ["conv4_2"])["conv4_2"], np.float64)
    fsty = fs.vgg_features(vgg, x_s, LAYERS)
    n_c = fc.shape[0] * fc.shape[1]
    lc = 0.02 * np.sum((fx["conv4_2"] - fc) ** 2) / (n_c * fc.shape[2])
    s_grams = {k: np_gram(fsty[k]) for k in LAYERS}
    a = sum(np.sum(s_grams[k] ** 2) / s_grams[k].shape[0] ** 2 for k in LAYERS)
    ls = sum(betas[k] / a * np.sum((np_gram(fx[k]) - s_grams[k]) ** 2) / s_grams[k].shape[0] ** 2 for k in LAYERS)
    x = x.astype(np.float64)
    tv = np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=0)).mean()
    return lc + ls + 0.3 * tv, lc, ls, tv


def test_ltv_matches_numpy(vgg, images):
    x_c, x_s, _ = images
    rng = np.random.default_rng(0)
    x = np.clip(x_c + rng.uniform(-0.2, 0.2, x_c.shape), -0.1, 1.1).astype(np.float32)  # clipping matters
    betas = dict(zip(LAYERS, [1.0, 0.0, 1 / 0.9, 0.5, 2.0]))
    grams = fs.style_grams(vgg, x_s)
    total, lc, ls, tv = np_ltv(vgg, x, x_c, x_s, betas)
    feats = fs.vgg_features(vgg, np.clip(x, 0, 1), LOSS_LAYERS)
    np.testing.assert_allclose(fs.ltv(vgg, x, x_c, grams, betas), total, rtol=1e-4)
    np.testing.assert_allclose(fs.content_loss(feats, fs.vgg_features(vgg, x_c, ["conv4_2"])), lc, rtol=1e-4)
    np.testing.assert_allclose(fs.style_loss(feats, grams, betas), ls, rtol=1e-4)
    np.testing.assert_allclose(fs.tv(np.clip(x, 0, 1)), tv, rtol=1e-5)


def test_gram_and_alpha(vgg, images):
    f = fs.vgg_features(vgg, images[1], ["conv2_1"])["conv2_1"]
    np.testing.assert_allclose(fs.gram(f), np_gram(f), rtol=1e-4, atol=1e-6)
    grams = fs.style_grams(vgg, images[1])
    expected = sum(np.sum(np_gram(fs.vgg_features(vgg, images[1], [k])[k]) ** 2) / fs.vgg_features(vgg, images[1], [k])[k].shape[-1] ** 2 for k in LAYERS)
    np.testing.assert_allclose(fs.alpha(grams), expected, rtol=1e-4)


def test_gram_vjp_is_the_product_rule():
    """``gram``'s one-product VJP, ``F (dG + dGᵀ) / n``, against the float64 numpy product rule,
    for a non-symmetric cotangent and a batch; then its own derivative (reverse over reverse)."""
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2, 5, 6, 7)).astype(np.float32)
    dg = rng.standard_normal((2, 7, 7)).astype(np.float32)
    _, pull = jax.vjp(fs.gram, jnp.asarray(f))
    (df,) = pull(jnp.asarray(dg))
    f64 = f.reshape(2, 30, 7).astype(np.float64)
    expected = (f64 @ dg + f64 @ dg.transpose(0, 2, 1)) / 30
    np.testing.assert_allclose(np.asarray(df).reshape(2, 30, 7), expected, rtol=1e-5, atol=1e-6)
    # d/dF of ‖∇_F <G, dG>‖², written out: ∇ = F S / n with S = dG + dGᵀ, so the gradient is
    # 2 F S² / n².
    s = dg + dg.transpose(0, 2, 1)
    grad2 = jax.grad(lambda f: jnp.sum(jax.vjp(fs.gram, f)[1](jnp.asarray(dg))[0] ** 2))(jnp.asarray(f))
    np.testing.assert_allclose(np.asarray(grad2).reshape(2, 30, 7), 2 * f64 @ (s @ s) / 900, rtol=1e-4, atol=1e-6)


def test_batch_gives_per_image_losses(vgg, images):
    x_c, x_s, _ = images
    grams = fs.style_grams(vgg, x_s)
    x = np.stack([x_c, x_s])
    batch = fs.ltv(vgg, x, np.stack([x_c, x_c]), grams)
    assert batch.shape == (2,)
    np.testing.assert_allclose(batch[1], fs.ltv(vgg, x_s, x_c, grams), rtol=1e-4)


def test_gradient_matches_finite_differences(vgg, images):
    x_c, x_s, _ = images
    grams = fs.style_grams(vgg, x_s)
    rng = np.random.default_rng(1)
    x = (0.1 + 0.8 * rng.uniform(size=x_c.shape)).astype(np.float32)  # away from the clip kinks
    loss = lambda y: fs.ltv(vgg, y, x_c, grams)  # noqa: E731
    grad = np.asarray(jax.grad(loss)(jnp.asarray(x)))
    # A direction with a large directional derivative (float32 losses), partly random.
    r = rng.normal(size=x.shape)
    d = (grad / np.linalg.norm(grad) + 0.5 * r / np.linalg.norm(r)).astype(np.float32)
    eps = 0.05  # ~5e-4 per pixel
    fd = (float(loss(x + eps * d)) - float(loss(x - eps * d))) / (2 * eps)
    np.testing.assert_allclose(float(np.vdot(grad, d)), fd, rtol=1e-2)


def test_mix_grams_definition(vgg, images):
    g1, g2 = fs.style_grams(vgg, images[1]), fs.style_grams(vgg, images[2])
    mixed = fs.mix_grams([g1, g2], [0.3, 0.7])
    for k in LAYERS:
        np.testing.assert_allclose(mixed[k], 0.3 * g1[k] + 0.7 * g2[k], rtol=1e-6)
    only_first = fs.mix_grams([g1, g2], [1.0, 0.0])
    for k in LAYERS:
        np.testing.assert_array_equal(only_first[k], g1[k])
    with pytest.raises(ValueError):
        fs.mix_grams([g1, g2], [1.0])


def test_masked_style_loss_definition(vgg, images):
    x_c, x_s, x_s2 = images
    g1, g2 = fs.style_grams(vgg, x_s), fs.style_grams(vgg, x_s2)
    feats = fs.vgg_features(vgg, x_c, LAYERS)
    h, w = x_c.shape[:2]
    ones = np.ones((h, w), np.float32)
    # One all-ones mask is the unmasked loss.
    np.testing.assert_allclose(fs.style_loss(feats, [g1], masks=[ones]), fs.style_loss(feats, g1), rtol=1e-5)
    # Two regions: each term is the Gram of the masked features against its own style.
    left = np.zeros((h, w), np.float32)
    left[:, : w // 2] = 1
    right = 1 - left
    got = fs.style_loss(feats, [g1, g2], masks=[left, right])
    expected = 0.0
    for grams, mask in ((g1, left), (g2, right)):
        a = float(fs.alpha(grams))
        for k in LAYERS:
            f = np.asarray(feats[k], np.float64)
            m = np.asarray(resize_mask(jnp.asarray(mask), f.shape[:2]), np.float64).reshape(-1)
            f2 = f.reshape(-1, f.shape[-1])
            gm = (f2 * m[:, None]).T @ f2 / m.sum()
            expected += np.sum((gm - np.asarray(grams[k])) ** 2) / f.shape[-1] ** 2 / a
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_style_of_itself_has_zero_style_loss(vgg, images):
    x_s = images[1]
    feats = fs.vgg_features(vgg, x_s, LAYERS)
    assert float(fs.style_loss(feats, fs.style_grams(vgg, x_s))) < 1e-8
