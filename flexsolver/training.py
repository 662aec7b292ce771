"""The training step (SPEC §3): the loss ``Σ_t LTV(X(t))``, Adam, a data-parallel ``pmap`` step.

The loop around it (resume, checkpoints, validation, samples) is :mod:`flexsolver.trainer`.

Shapes: a global batch ``(B,S,S,3)`` is split as ``(D, B/D, S, S, 3)`` over the ``D`` local
devices; gradients are averaged with ``lax.pmean`` over the axis ``"batch"``, so every device
holds the same parameters after each step.
"""

from __future__ import annotations

import functools
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flexsolver.config import SCHEDULES
from flexsolver.losses import LOSS_LAYERS, ltv, ltv_of_features, style_grams
from flexsolver.solver import unroll
from flexsolver.vgg import CONTENT_LAYER, STYLE_LAYERS, VGG19, vgg_features

AXIS = "batch"


def learning_rate(lr: float, schedule: str = "constant", warmup: int = 0, steps: int = 1) -> optax.ScalarOrSchedule:
    """``lr`` itself, or optax's linear warmup (``warmup`` steps from 0) then cosine decay to
    ``lr / 100`` at step ``steps``."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 0), max(steps, warmup + 1), lr / 100)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


class ParamsEmaState(NamedTuple):
    """The exponential moving average of the parameters, a pytree like them."""

    ema: Any


def params_ema(decay: float) -> optax.GradientTransformation:
    """Keeps ``ema ← decay·ema + (1−decay)·(params + updates)``, the average of the parameters
    *after* each update, in the optimiser state; the updates pass through unchanged.

    Put it last in an ``optax.chain``. It starts at the initial parameters (not at zero), so it
    needs no debiasing and a run started from trained parameters averages around them. Being
    optimiser state, it is checkpointed and resumed with it; :func:`ema_params` reads it back.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")

    def init(params):
        return ParamsEmaState(ema=jax.tree.map(jnp.asarray, params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("params_ema needs the parameters: call optimizer.update(grads, state, params)")
        new = optax.apply_updates(params, updates)
        return updates, ParamsEmaState(ema=optax.incremental_update(new, state.ema, 1.0 - decay))

    return optax.GradientTransformation(init, update)


def ema_params(opt_state) -> Any | None:
    """The averaged parameters held by a :func:`params_ema` in ``opt_state`` (``None`` if none)."""
    return optax.tree_utils.tree_get(opt_state, "ema")


def make_optimizer(
    lr: float, clip_grad_norm: float = 0.0, schedule: str = "constant", warmup: int = 0, steps: int = 1,
    ema_decay: float = 0.0,
) -> optax.GradientTransformation:
    """Adam (on the :func:`learning_rate` schedule), after clipping the global gradient norm when
    ``clip_grad_norm > 0``, and followed by :func:`params_ema` when ``ema_decay > 0``. The
    schedule's position is Adam's step count, kept in its state, so a resumed run continues the
    schedule where it stopped."""
    parts = [
        *([optax.clip_by_global_norm(clip_grad_norm)] if clip_grad_norm > 0 else []),
        optax.adam(learning_rate(lr, schedule, warmup, steps)),
        *([params_ema(ema_decay)] if ema_decay > 0 else []),
    ]
    # Adam alone stays unchained, so the optimiser state of older runs still restores.
    return parts[0] if len(parts) == 1 else optax.chain(*parts)


def betas_to_weights(betas: jax.Array) -> dict[str, jax.Array]:
    """``(B,5)`` per-image style weights → ``{layer: (B,)}``."""
    return {name: betas[:, i] for i, name in enumerate(STYLE_LAYERS)}


def loss_fn(
    params, vgg: VGG19, batch: dict, nonlinearity: str, pair_loss_cap: float = 0.0, last_only: bool = False
) -> tuple[jax.Array, jax.Array]:
    """``mean_b w_b Σ_t LTV_b(X(t))`` for one (per-device) batch, and the per-iteration means
    ``(N,)`` of the unweighted ``LTV``; with ``last_only``, ``mean_b w_b LTV_b(X(N))`` and its
    mean ``(1,)``: the output alone is scored (the paper scores every iterate), which takes one
    VGG pass per pair instead of ``N``.

    ``batch``: ``x_c``, ``x_s`` ``(B,S,S,3)`` and ``betas`` ``(B,5)``. ``w_b = 1`` (the paper's)
    unless ``pair_loss_cap > 0``: then ``w_b = min(1, cap / LTV_b(X_c))``, so a pair whose content
    already scores above ``cap`` (a flat, low-α style against a textured content scores 3–24,
    against ≤ 1.4 for most pairs) counts by its *relative* improvement and cannot dominate the
    step's gradient. The weights are constants (no gradient flows through them).
    """
    x_c, x_s = batch["x_c"], batch["x_s"]
    grams = jax.lax.stop_gradient(style_grams(vgg, x_s))
    weights = betas_to_weights(batch["betas"])
    layers = LOSS_LAYERS if pair_loss_cap > 0 else (CONTENT_LAYER,)
    content_features = vgg_features(vgg, x_c, layers)
    outputs = unroll(params, x_c, [grams], None, weights, None, nonlinearity, True)
    scored = outputs[-1:] if last_only else outputs
    per_tb = batched_ltv(vgg, scored, x_c, grams, weights, {CONTENT_LAYER: content_features[CONTENT_LAYER]})
    per_t = per_tb.mean(axis=1)
    if pair_loss_cap <= 0:
        return per_t.sum(), per_t
    # LTV of the content itself, from the features computed above (its content term is 0).
    content_ltv = ltv_of_features(content_features, jnp.clip(x_c, 0.0, 1.0), content_features, grams, weights)
    pair_weights = jax.lax.stop_gradient(jnp.minimum(1.0, pair_loss_cap / content_ltv))
    return (per_tb.sum(axis=0) * pair_weights).mean(), per_t


def batched_ltv(vgg, outputs, x_c, grams, weights, content_features) -> jax.Array:
    """``LTV(X(t))`` of every output ``(B,S,S,3)`` in one VGG pass over the ``T·B`` images
    (one copy of VGG in the compiled program instead of ``T``): returns ``(T, B)``."""
    t = len(outputs)
    tile = lambda a: jnp.concatenate([a] * t, axis=0)  # noqa: E731
    losses = ltv(
        vgg, jnp.concatenate(outputs, axis=0), None,
        jax.tree.map(tile, grams), jax.tree.map(tile, weights),
        content_features=jax.tree.map(tile, content_features),
    )
    return losses.reshape(t, -1)


def train_step(params, opt_state, vgg, batch, *, optimizer, nonlinearity, pair_loss_cap=0.0, last_only=False):
    """One Adam step on a per-device batch; call through :func:`make_train_step`."""
    (loss, per_t), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, vgg, batch, nonlinearity, pair_loss_cap, last_only
    )
    grads = jax.lax.pmean(grads, AXIS)
    loss, per_t = jax.lax.pmean((loss, per_t), AXIS)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {"loss": loss, "ltv_per_iteration": per_t, "grad_norm": optax.tree.norm(grads)}


@functools.lru_cache(maxsize=8)
def make_train_step(
    lr: float, clip_grad_norm: float, nonlinearity: str, devices: tuple | None = None,
    schedule: str = "constant", warmup: int = 0, steps: int = 1, *,
    pair_loss_cap: float = 0.0, ema_decay: float = 0.0, last_only: bool = False,
):
    """The pmapped step: ``(params, opt_state)`` replicated, ``vgg`` broadcast, batch sharded.

    Cached, so runs with the same optimiser settings share one compiled program.
    """
    optimizer = make_optimizer(lr, clip_grad_norm, schedule, warmup, steps, ema_decay)
    step = partial(train_step, optimizer=optimizer, nonlinearity=nonlinearity, pair_loss_cap=pair_loss_cap,
                   last_only=last_only)
    return jax.pmap(
        step, axis_name=AXIS, in_axes=(0, 0, None, 0), donate_argnums=(0, 1),
        devices=list(devices) if devices else None,
    )


def replicate(tree: Any, devices=None) -> Any:
    """Stacks one copy per local device along a new leading axis (what ``pmap`` takes)."""
    if not jax.tree.leaves(tree):
        return tree  # e.g. the empty state of plain SGD
    count = len(devices or jax.local_devices())
    stacked = jax.tree.map(lambda a: np.broadcast_to(np.asarray(a), (count, *np.shape(a))), tree)
    # Through pmap, so the arrays already have the layout the train step returns (no recompile).
    return jax.pmap(lambda t: t, axis_name=AXIS, devices=devices)(stacked)


def unreplicate(tree: Any) -> Any:
    return jax.tree.map(lambda a: a[0], tree)


def shard(batch: dict, num_devices: int) -> dict:
    """Splits the leading batch axis of every array over ``num_devices``."""

    def split(a):
        a = np.asarray(a)
        if a.shape[0] % num_devices:
            raise ValueError(f"batch of {a.shape[0]} does not split over {num_devices} devices")
        return a.reshape(num_devices, a.shape[0] // num_devices, *a.shape[1:])

    return {k: split(v) for k, v in batch.items() if k in ("x_c", "x_s", "betas")}


@partial(jax.jit, static_argnames=("nonlinearity",))
def evaluate(params, vgg: VGG19, x_c, x_s, nonlinearity: str = "heaviside"):
    """Validation: ``LTV`` (β = 1) of every ``X(t)`` and the outputs, for pairs ``(P,S,S,3)``.

    Returns ``(ltv (N+1, P) with row 0 the content itself, [X(1)…X(N)])``.
    """
    grams = style_grams(vgg, x_s)
    weights = {name: jnp.ones(x_c.shape[0]) for name in STYLE_LAYERS}
    content_features = vgg_features(vgg, x_c, (CONTENT_LAYER,))
    outputs = unroll(params, x_c, [grams], None, weights, None, nonlinearity, True)
    losses = batched_ltv(vgg, [x_c, *outputs], x_c, grams, weights, content_features)
    return losses, [jnp.clip(x, 0.0, 1.0) for x in outputs]
