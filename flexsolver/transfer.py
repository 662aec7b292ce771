"""One call from images to a stylised image, with every runtime control of the solver.

:func:`stylize` is what the ``flexsolver stylize`` command and the Colab notebook run: it turns the
user-level options (several styles mixed by weights or placed by masks, a subset of style scales,
a global intensity, photorealism, colour preservation) into the solver's arguments (SPEC §4) and
returns a clipped image. Everything here is a thin composition of :func:`flexsolver.solve`,
:func:`flexsolver.style_grams`, :func:`flexsolver.mix_grams` and the proxes.

Colour preservation is Gatys et al.'s *luminance-only transfer* ("Preserving colour in neural
artistic style transfer", 2016): content and styles are replaced by their luminance (BT.601 Y,
replicated to 3 channels; each style's Y is first matched to the content's Y mean and standard
deviation), the solver stylises the luminance, and the output Y is recombined with the content's
chroma (Cb, Cr).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from flexsolver.color import rgb_to_ycbcr, ycbcr_to_rgb
from flexsolver.losses import mix_grams, style_grams
from flexsolver.prox import clip, compose
from flexsolver.solver import solve
from flexsolver.vgg import STYLE_LAYERS, VGG19

__all__ = ["stylize", "style_weights_for", "check_mix_weights"]

WEIGHTS_TOLERANCE = 1e-3


def style_weights_for(scales: Sequence[str] | None = None, intensity: float = 1.0) -> dict[str, float]:
    """``{layer: β_l}``: ``intensity`` on the chosen ``scales`` (default all of
    :data:`STYLE_LAYERS`), 0 elsewhere."""
    scales = STYLE_LAYERS if scales is None else tuple(scales)
    unknown = [s for s in scales if s not in STYLE_LAYERS]
    if unknown or not scales:
        raise ValueError(f"unknown style scales {unknown or '(none given)'}; choose among {','.join(STYLE_LAYERS)}")
    if not np.isfinite(intensity) or intensity < 0:
        raise ValueError(f"intensity must be a finite number >= 0, got {intensity}")
    return {name: (float(intensity) if name in scales else 0.0) for name in STYLE_LAYERS}


def _per_layer_weights(style_weights: Mapping[str, float], intensity: float) -> dict[str, float]:
    """``{layer: intensity · β_l}`` for every layer of :data:`STYLE_LAYERS` (missing ones 0)."""
    unknown = [name for name in style_weights if name not in STYLE_LAYERS]
    if unknown:
        raise ValueError(f"unknown style layers {unknown}; choose among {','.join(STYLE_LAYERS)}")
    betas = [float(style_weights.get(name, 0.0)) for name in STYLE_LAYERS] + [float(intensity)]
    if any(not np.isfinite(b) or b < 0 for b in betas):
        raise ValueError(f"style weights and intensity must be finite numbers >= 0, got "
                         f"{dict(style_weights)} and {intensity}")
    return {name: b * float(intensity) for name, b in zip(STYLE_LAYERS, betas)}


def check_mix_weights(weights: Sequence[float], n_styles: int) -> list[float]:
    """The mixing weights ``α_i`` (SPEC eq. 12): one per style, each ≥ 0, summing to 1."""
    weights = [float(w) for w in weights]
    if len(weights) != n_styles:
        raise ValueError(f"{n_styles} style(s) but {len(weights)} weight(s); give one weight per style")
    if any(not np.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"style weights must be >= 0, got {weights}")
    if abs(sum(weights) - 1.0) > WEIGHTS_TOLERANCE:
        raise ValueError(f"style weights must sum to 1, got {weights} (sum {sum(weights):g})")
    return weights


def _match_luminance(x_s, y_c) -> jnp.ndarray:
    """``x_s``'s luminance, affinely matched to the mean and std of the content luminance ``y_c``."""
    y_s = rgb_to_ycbcr(x_s)[..., 0]
    scale = jnp.std(y_c) / jnp.maximum(jnp.std(y_s), 1e-6)
    y = jnp.clip((y_s - jnp.mean(y_s)) * scale + jnp.mean(y_c), 0.0, 1.0)
    return jnp.repeat(y[..., None], 3, axis=-1)


def stylize(
    params,
    vgg: VGG19,
    x_c,
    styles: Sequence,
    *,
    weights: Sequence[float] | None = None,
    masks: Sequence | None = None,
    scales: Sequence[str] | None = None,
    intensity: float = 1.0,
    style_weights: Mapping[str, float] | None = None,
    photo_lam: float | None = None,
    preserve_color: bool = False,
    nonlinearity: str | None = None,
) -> np.ndarray:
    """Stylises one content image.

    Args:
      params: solver parameters (``load_checkpoint()[0]``).
      vgg: VGG-19 (``load_vgg19()``), for the style Grams.
      x_c: content, float32 ``(H,W,3)`` in [0,1].
      styles: one or more style images ``(H_i,W_i,3)`` in [0,1], or their precomputed Grams
        (mappings ``{layer: (c,c)}``; not with ``preserve_color``).
      weights: mixing weights, one per style, summing to 1 (default: equal). Not with ``masks``.
      masks: one ``(H,W)`` mask in [0,1] per style: style ``i`` acts where mask ``i`` is on.
      scales: style layers to use (default all), see :func:`style_weights_for`.
      intensity: global style strength (multiplies every ``β_l``; 1 = as trained).
      style_weights: per-layer ``{layer: β_l}`` (missing layers off), multiplied by ``intensity``;
        the general form of ``scales``, which it excludes.
      photo_lam: if given, photorealistic transfer: the matting-Laplacian prox with ``λ`` this.
      preserve_color: luminance-only transfer, keeping the content's colours (module docstring).
      nonlinearity: only for a bare parameter dict (a ``Solver`` carries its gate).
    Returns:
      float32 ``(H,W,3)`` in [0,1].
    """
    x_c = jnp.asarray(x_c, jnp.float32)
    if x_c.ndim != 3 or x_c.shape[-1] != 3:
        raise ValueError(f"the content must be an (H,W,3) image, got shape {x_c.shape}")
    styles = list(styles)
    if not styles:
        raise ValueError("give at least one style")
    if masks is not None and weights is not None:
        raise ValueError("use mixing weights or masks, not both (masks place each style on its region)")
    if masks is not None and len(masks) != len(styles):
        raise ValueError(f"{len(styles)} style(s) but {len(masks)} mask(s); give one mask per style")
    if style_weights is not None and scales is not None:
        raise ValueError("give style scales or per-layer style weights, not both")
    style_weights = (style_weights_for(scales, intensity) if style_weights is None
                     else _per_layer_weights(style_weights, intensity))

    if preserve_color:
        if any(isinstance(s, Mapping) for s in styles):
            raise ValueError("preserve_color needs the style images, not their Grams")
        ycc_c = rgb_to_ycbcr(x_c)  # the content's Y drives the transfer, its CbCr come back at the end
        styles = [_match_luminance(jnp.asarray(s, jnp.float32), ycc_c[..., 0]) for s in styles]
        target = jnp.repeat(ycc_c[..., :1], 3, axis=-1)
    else:
        target = x_c
    grams = [s if isinstance(s, Mapping) else style_grams(vgg, s) for s in styles]

    parts = []
    if photo_lam is not None:
        from flexsolver.matting import matting_prox  # its sparse matrices load only for photos

        parts.append(matting_prox(target, photo_lam))
    prox = compose(*parts, clip(0.0, 1.0))
    if masks is not None:
        out = solve(params, target, grams, masks=[jnp.asarray(m, jnp.float32) for m in masks], prox=prox,
                    style_weights=style_weights, nonlinearity=nonlinearity)
    else:
        alphas = check_mix_weights(weights, len(grams)) if weights is not None else [1.0 / len(grams)] * len(grams)
        mixed = grams[0] if len(grams) == 1 else mix_grams(grams, alphas)
        out = solve(params, target, mixed, prox=prox, style_weights=style_weights, nonlinearity=nonlinearity)

    if preserve_color:
        y_out = jnp.mean(out, axis=-1, keepdims=True)
        out = ycbcr_to_rgb(jnp.concatenate([y_out, ycc_c[..., 1:]], axis=-1))
    return np.clip(np.asarray(out), 0.0, 1.0)
