"""The slow, flexible reference: minimise LTV directly (Gatys et al.), optionally with a prox.

* ``method="lbfgs"``: optax's L-BFGS with its zoom line search, started from ``x_c``;
* ``method="adam"``: Adam on the pixels;
* with a ``prox`` ``P_R``, proximal gradient: ``X ← P_R(X − step)`` where ``step`` is Adam's
  preconditioned update (a quasi-Newton step followed by a prox has no convergence guarantee,
  so a prox always selects Adam's update).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import optax
from tqdm.auto import tqdm

from flexsolver.losses import Grams, ltv
from flexsolver.prox import as_pytree
from flexsolver.vgg import CONTENT_LAYER, VGG19, vgg_features


def _objective(x, vgg, x_c, grams, style_weights, masks, content_features):
    return ltv(
        vgg, x, x_c, grams, style_weights, masks=masks, content_features=content_features
    ).sum()


def _make_tx(config):
    method, lr, memory_size = config
    return optax.lbfgs(memory_size=memory_size) if method == "lbfgs" else optax.adam(lr)


@partial(jax.jit, static_argnames=("config",))
def _step(x, state, args, prox, config):
    tx = _make_tx(config)
    fun = lambda y: _objective(y, *args)  # noqa: E731
    if config[0] == "lbfgs":
        value, grad = optax.value_and_grad_from_state(fun)(x, state=state)
        updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=fun)
    else:
        value, grad = jax.value_and_grad(fun)(x)
        updates, state = tx.update(grad, state, x)
    x = optax.apply_updates(x, updates)
    return (x if prox is None else prox(x)), state, value


def gatys(
    vgg: VGG19,
    x_c,
    grams: Grams | Sequence[Grams],
    steps: int = 300,
    method: str = "lbfgs",
    prox: Callable | None = None,
    *,
    style_weights: Mapping[str, float] | None = None,
    masks: Sequence[jax.Array] | None = None,
    lr: float = 0.02,
    memory_size: int = 10,
    progress: bool = False,
    return_losses: bool = False,
):
    """Minimises ``LTV`` from ``X(0) = x_c``.

    Args:
      vgg: VGG-19 params.
      x_c: content image ``(H,W,3)`` (or a batch; the summed loss is minimised).
      grams: style Grams from :func:`flexsolver.style_grams` (a list with ``masks``).
      steps: iterations.
      method: ``"lbfgs"`` or ``"adam"`` (ignored with a ``prox``: proximal Adam steps).
      prox: a proximal operator ``Y ↦ X`` (see :mod:`flexsolver.prox`), or ``None``.
      lr: Adam's step size.
    Returns:
      The image clipped to [0,1], same shape as ``x_c``; with ``return_losses``, also the list
      of LTV values before each step.
    """
    if method not in ("lbfgs", "adam"):
        raise ValueError(f"method must be 'lbfgs' or 'adam', not {method!r}")
    x_c = jnp.asarray(x_c, jnp.float32)
    content_features = vgg_features(vgg, x_c, (CONTENT_LAYER,))
    args = (vgg, x_c, grams, style_weights, masks, content_features)
    config = ("lbfgs" if method == "lbfgs" and prox is None else "adam", lr, memory_size)
    prox = None if prox is None else as_pytree(prox)
    x = jnp.array(x_c)
    # optax's line-search info starts weakly typed and comes back strongly typed: make it strong
    # now, so that the step compiles once instead of twice.
    state = jax.tree.map(lambda a: jnp.asarray(a, dtype=a.dtype), _make_tx(config).init(x))
    losses = []
    bar = tqdm(range(steps), desc=f"gatys ({config[0]})", disable=not progress, leave=False)
    for i in bar:
        x, state, value = _step(x, state, args, prox, config)
        losses.append(value)
        if progress and i % 10 == 0:
            bar.set_postfix(ltv=f"{float(value):.4f}")
    x = jnp.clip(x, 0.0, 1.0)
    if return_losses:
        return x, [float(v) for v in losses]
    return x
