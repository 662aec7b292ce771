"""The Gatys style-transfer loss of SPEC §1, as pure functions.

Notation (SPEC §1): ``F_l`` features of the image ``X`` at layer ``l`` (``n_l`` positions,
``c_l`` channels), ``C_l`` those of the content ``X_c``, ``gram_l = S_lᵀS_l / n'_l`` the style's
Gram matrix.

* ``Lc = λc ‖F − C‖²_F / (n c)`` at conv4_2, ``λc = 0.02``;
* ``Ls = Σ_l (β_l / α) ‖F_lᵀF_l / n_l − gram_l‖²_F / c_l²`` over conv1_1 … conv5_1, with
  ``α = Σ_l ‖gram_l‖²_F / c_l²``;
* ``LTV = Lc + Ls + λTV · TV``, ``λTV = 0.3``, TV the mean anisotropic L1 variation, all
  evaluated on ``X`` clipped to [0,1].

Grams are dicts ``{layer: (c_l, c_l)}`` (or ``(B, c_l, c_l)`` for a batch of styles); style
weights are dicts ``{layer: β_l}`` with scalar or ``(B,)`` values. Functions accept a single
image ``(H,W,3)`` (scalar loss) or a batch ``(B,H,W,3)`` (loss per image, ``(B,)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from flexsolver.vgg import CONTENT_LAYER, STYLE_LAYERS, VGG19, vgg_features

CONTENT_WEIGHT = 0.02
TV_WEIGHT = 0.3
LOSS_LAYERS = STYLE_LAYERS + (CONTENT_LAYER,)

Grams = Mapping[str, jax.Array]


def gram(features: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """``FᵀF / n`` of ``(…, h, w, c)`` features → ``(…, c, c)``.

    With a ``mask`` of shape ``(…, h, w)`` (weights in [0,1]) the region's Gram
    ``Fᵀ diag(m) F / Σm`` is returned instead.
    """
    f = features.reshape(*features.shape[:-3], -1, features.shape[-1])
    if mask is None:
        return _gram(f)
    m = mask.reshape(*mask.shape[:-2], -1)
    total = jnp.maximum(m.sum(-1), 1e-8)[..., None, None]
    return jnp.einsum("...nc,...n,...nd->...cd", f, m, f) / total


@jax.custom_vjp
def _gram(f: jax.Array) -> jax.Array:
    """``FᵀF / n`` of ``(…, n, c)``. Its VJP is one product, ``F (dG + dGᵀ) / n``, where JAX's own
    differentiates each factor apart: two ``(n × c)·(c × c)`` products, then their sum."""
    return jnp.einsum("...nc,...nd->...cd", f, f) / f.shape[-2]


def _gram_fwd(f):
    return _gram(f), f


def _gram_bwd(f, dg):
    return (jnp.einsum("...nc,...cd->...nd", f, dg + jnp.swapaxes(dg, -1, -2)) / f.shape[-2],)


_gram.defvjp(_gram_fwd, _gram_bwd)


@jax.jit
def style_grams(vgg: VGG19, x_s) -> dict[str, jax.Array]:
    """The five style Grams ``S_lᵀS_l / n'_l`` the solver needs: ``{layer: (c_l,c_l)}`` (or
    ``(B,c_l,c_l)`` for a batch ``(B,H,W,3)``). One compiled program, features and Grams."""
    feats = vgg_features(vgg, x_s, STYLE_LAYERS)
    return {name: gram(feats[name]) for name in STYLE_LAYERS}


def alpha(grams: Grams) -> jax.Array:
    """The paper's normalisation ``α = Σ_l ‖gram_l‖²_F / c_l²`` (scalar, or ``(B,)``)."""
    return sum(jnp.sum(g**2, axis=(-2, -1)) / g.shape[-1] ** 2 for g in grams.values())


def mix_grams(grams_list: Sequence[Grams], alphas: Sequence[float]) -> dict[str, jax.Array]:
    """Style mixing (SPEC §4, eq. 12): ``Σ_i α_i gram_l(X_s^i)`` per layer."""
    if len(grams_list) != len(alphas):
        raise ValueError(f"{len(grams_list)} styles but {len(alphas)} mixing weights")
    return {
        name: sum(a * g[name] for a, g in zip(alphas, grams_list)) for name in grams_list[0]
    }


def content_loss(features: Mapping[str, jax.Array], content_features: Mapping[str, jax.Array]):
    """``λc ‖F − C‖²_F / (n c)`` at conv4_2."""
    f, c = features[CONTENT_LAYER], content_features[CONTENT_LAYER]
    return CONTENT_WEIGHT * jnp.mean((f - c) ** 2, axis=(-3, -2, -1))


def resize_mask(mask: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """Region mask ``(…, H, W)`` → ``(…, h, w)`` by area-weighted (linear, antialiased) resizing."""
    return jax.image.resize(mask, (*mask.shape[:-2], *shape), method="linear", antialias=True)


def style_loss(
    features: Mapping[str, jax.Array],
    grams: Grams | Sequence[Grams],
    style_weights: Mapping[str, jax.Array] | None = None,
    masks: Sequence[jax.Array] | None = None,
):
    """``Σ_i Σ_l (β_l / α_i) ‖gram_l(F, M_i) − gram_l^i‖²_F / c_l²``.

    Args:
      features: VGG features of the image, ``{layer: (…,h,w,c)}``.
      grams: one style's Grams, or with ``masks`` a list of them (style ``i`` for region ``i``).
      style_weights: ``{layer: β_l}``; missing layers weigh 0; ``None`` means all 1.
      masks: optional list of region masks ``(…,H,W)`` at the image's resolution, one per style;
        each is resized to every layer and gives the region's Gram (:func:`gram`).
    """
    if masks is None:
        grams_list, masks = [grams], [None]
    else:
        grams_list = list(grams)
        if len(grams_list) != len(masks):
            raise ValueError(f"{len(grams_list)} styles but {len(masks)} masks")
    total = 0.0
    for style, mask in zip(grams_list, masks):
        norm = alpha(style)
        for name in STYLE_LAYERS:
            beta = 1.0 if style_weights is None else style_weights.get(name, 0.0)
            f = features[name]
            m = None if mask is None else resize_mask(mask, f.shape[-3:-1])
            diff = gram(f, m) - style[name]
            total = total + beta / norm * jnp.sum(diff**2, axis=(-2, -1)) / f.shape[-1] ** 2
    return total


def tv(x: jax.Array) -> jax.Array:
    """Mean anisotropic total variation ``mean|∂x X| + mean|∂y X|`` of ``(…,H,W,3)``."""
    dx = jnp.abs(x[..., :, 1:, :] - x[..., :, :-1, :])
    dy = jnp.abs(x[..., 1:, :, :] - x[..., :-1, :, :])
    return jnp.mean(dx, axis=(-3, -2, -1)) + jnp.mean(dy, axis=(-3, -2, -1))


def ltv(
    vgg: VGG19,
    x,
    x_c,
    grams: Grams | Sequence[Grams],
    style_weights: Mapping[str, jax.Array] | None = None,
    *,
    masks: Sequence[jax.Array] | None = None,
    content_features: Mapping[str, jax.Array] | None = None,
):
    """``LTV(X) = Lc + Ls + λTV·TV`` of ``X`` clipped to [0,1] (SPEC §1).

    Args:
      x, x_c: image and content, ``(H,W,3)`` or ``(B,H,W,3)``.
      grams: the style's Grams (or, with ``masks``, a list of them).
      content_features: precomputed ``vgg_features(vgg, x_c, [conv4_2])`` to skip that pass.
    Returns:
      scalar, or ``(B,)`` for a batch.
    """
    x = jnp.clip(jnp.asarray(x), 0.0, 1.0)
    feats = vgg_features(vgg, x, LOSS_LAYERS)
    if content_features is None:
        content_features = vgg_features(vgg, x_c, (CONTENT_LAYER,))
    return ltv_of_features(feats, x, content_features, grams, style_weights, masks)


def ltv_of_features(
    features: Mapping[str, jax.Array],
    x,
    content_features: Mapping[str, jax.Array],
    grams: Grams | Sequence[Grams],
    style_weights: Mapping[str, jax.Array] | None = None,
    masks: Sequence[jax.Array] | None = None,
):
    """:func:`ltv` from the VGG ``features`` of ``x`` (at :data:`LOSS_LAYERS`) and ``x`` itself,
    already clipped to [0,1]: for callers that computed the features anyway."""
    return (
        content_loss(features, content_features)
        + style_loss(features, grams, style_weights, masks)
        + TV_WEIGHT * tv(x)
    )
