"""``solve``: the unrolled, learned proximal gradient descent ``X(t+1) = P_R[X(t) − g_t(X(t))]``.

The loop over the ``N`` iterations is unrolled in Python inside one ``jit`` (no ``lax.scan``):
each iteration has its own weights and XLA sees the whole chain. The prox is a pytree
(``jax.tree_util.Partial``) so new prox data, styles or contents of the same shapes reuse the
compiled program.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import jax
import jax.numpy as jnp
import numpy as np

from flexsolver.network import Solver, iteration, split_solver
from flexsolver.prox import Prox, as_pytree
from flexsolver.vgg import STYLE_LAYERS

MULTIPLE = 16  # four 2× poolings


def pad_to_multiple(x: jax.Array, multiple: int = MULTIPLE) -> jax.Array:
    """Reflect-pads the two spatial axes of ``(…,H,W,C)`` at the bottom/right to a multiple."""
    h, w = x.shape[-3], x.shape[-2]
    pads = [(0, 0)] * x.ndim
    pads[-3] = (0, -h % multiple)
    pads[-2] = (0, -w % multiple)
    return jnp.pad(x, pads, mode="reflect") if any(p[1] for p in pads) else x


def _pad_mask(m: jax.Array, shape: tuple[int, int]) -> jax.Array:
    h, w = m.shape[-2:]
    pads = [(0, 0)] * (m.ndim - 2) + [(0, shape[0] - h), (0, shape[1] - w)]
    return jnp.pad(m, pads, mode="reflect")


def default_style_weights() -> dict[str, float]:
    """``β_l = 1`` on every style layer (the paper's evaluation setting)."""
    return {name: 1.0 for name in STYLE_LAYERS}


def unroll(params, x_c, styles, prox, style_weights, masks, nonlinearity, return_all):
    """The unrolled iterations on validated arrays (what ``solve`` jits, and training calls).

    ``params``: a ``Solver`` or a bare dict (:func:`~flexsolver.network.split_solver`, which
    checks ``nonlinearity`` against it); ``x_c``: ``(B,H,W,3)``; ``styles``: list of Gram dicts; ``prox``: pytree callable or None;
    ``style_weights``: ``{layer: scalar or (B,)}``; ``masks``: None or one ``(…,H,W)`` per style.
    Returns ``X(N)`` or, with ``return_all``, ``[X(1), …, X(N)]``.
    """
    params, nonlinearity = split_solver(params, nonlinearity)
    h, w = x_c.shape[1:3]
    x = x_c
    masks_padded = None
    if masks is not None:
        padded_shape = pad_to_multiple(x_c).shape[1:3]
        masks_padded = [_pad_mask(m, padded_shape) for m in masks]
    outputs = []
    for params_t in params["iterations"]:
        update = iteration(
            params_t, pad_to_multiple(x), styles, style_weights, masks_padded, nonlinearity
        )
        x = x - update[:, :h, :w]
        if prox is not None:
            x = prox(x)
        outputs.append(x)
    return outputs if return_all else x


def _unroll_any(params, x_c, styles, prox, style_weights, masks, nonlinearity, return_all, single):
    """:func:`unroll` for ``(B,H,W,3)``, or for one ``(H,W,3)`` image when ``single``: the batch
    axis is added and removed inside the compiled program (eagerly, each would compile a program
    of its own in every new process)."""
    out = unroll(params, x_c[None] if single else x_c, styles, prox, style_weights, masks, nonlinearity, return_all)
    if single:
        return [o[0] for o in out] if return_all else out[0]
    return out


_solve = jax.jit(_unroll_any, static_argnames=("nonlinearity", "return_all", "single"))


def _float32(a):
    """``a`` as float32 for a jitted call: JAX arrays (tracers too) as they are, host values as
    numpy (``jnp.asarray`` of a host value compiles a small program per shape in every process)."""
    if isinstance(a, jax.Array):
        return a if a.dtype == jnp.float32 else a.astype(jnp.float32)
    return np.asarray(a, np.float32)


def solve(
    params: Solver | dict,
    x_c,
    style_grams: Mapping[str, jax.Array] | Sequence[Mapping[str, jax.Array]],
    *,
    prox: Prox | None = None,
    style_weights: Mapping[str, float] | None = None,
    masks: Sequence[jax.Array] | None = None,
    return_all: bool = False,
    nonlinearity: str | None = None,
):
    """Stylises ``x_c`` with the learned solver.

    Args:
      params: the :class:`~flexsolver.network.Solver` (``init_params``, ``load_checkpoint``), or
        a bare parameter dict.
      x_c: content, RGB in [0,1], ``(H,W,3)`` or ``(B,H,W,3)``, any ``H×W``.
      style_grams: one style's Grams ``{layer: (c,c) or (B,c,c)}`` (see ``style_grams`` and
        ``mix_grams``), or, with ``masks``, a list of them, one per region.
      prox: proximal operator ``Y ↦ X`` applied after every iteration (``compose`` several).
      style_weights: ``{layer: β_l}`` for conv1_1 … conv5_1; missing layers are switched off;
        default all 1. Scale them all for the global intensity.
      masks: one ``(H,W)`` (or ``(B,H,W)``) mask in [0,1] per style: style ``i`` acts where
        mask ``i`` is on.
      return_all: return the list ``[X(1), …, X(N)]`` instead of ``X(N)``.
      nonlinearity: only for a bare dict: the gate it was trained with (default Heaviside); a
        ``Solver`` carries its own.
    Returns:
      ``X(N)``, same shape as ``x_c`` (no clipping unless the prox clips).
    """
    x_c = _float32(x_c)
    single = x_c.ndim == 3
    if x_c.ndim not in (3, 4) or x_c.shape[-1] != 3:
        raise ValueError(f"x_c must be (H,W,3) or (B,H,W,3), got shape {x_c.shape}")
    image_shape = x_c.shape[-3:-1]
    params, nonlinearity = split_solver(params, nonlinearity)
    if masks is None:
        if not isinstance(style_grams, Mapping):
            raise ValueError("several styles need one mask each (masks=[...])")
        styles = [style_grams]
    else:
        styles = list(style_grams) if not isinstance(style_grams, Mapping) else [style_grams]
        if len(styles) != len(masks):
            raise ValueError(f"{len(styles)} styles but {len(masks)} masks")
        masks = [_float32(m) for m in masks]
        for m in masks:
            if m.shape[-2:] != image_shape:
                raise ValueError(f"mask of shape {m.shape} does not match the content {image_shape}")
    for grams in styles:
        missing = [name for name in STYLE_LAYERS if name not in grams]
        if missing:
            raise ValueError(f"style Grams miss layers {missing}")
    weights = default_style_weights() if style_weights is None else dict(style_weights)
    unknown = [name for name in weights if name not in STYLE_LAYERS]
    if unknown:
        raise ValueError(f"unknown style layers {unknown}; choose among {STYLE_LAYERS}")
    weights = {name: _float32(v) for name, v in weights.items()}
    styles = [{name: _float32(g[name]) for name in STYLE_LAYERS} for g in styles]
    prox = None if prox is None else as_pytree(prox)
    return _solve(params, x_c, styles, prox, weights, masks, nonlinearity, return_all, single)
