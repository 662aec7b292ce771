"""Proximal operators as plain functions ``Y ↦ X``, and their composition.

A proximal operator ``P_R(Y) = argmin_X ½‖X − Y‖² + R(X)`` enters the solver after every
learned step (SPEC §4). Operators that hold data (a Laplacian, a warped frame) are
``jax.tree_util.Partial`` objects: their data are pytree leaves, so new data with the same
shapes reuses the compiled solver. Any plain callable is accepted too (:func:`as_pytree`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jax.tree_util import Partial

Prox = Callable


def as_pytree(prox: Prox) -> Partial:
    """Wraps a plain callable so that it crosses ``jit`` (its identity is the static part)."""
    if isinstance(prox, Partial):
        return prox
    if not callable(prox):
        raise TypeError(f"a proximal operator must be callable, got {type(prox).__name__}")
    return Partial(prox)


def _chain(proxes, y):
    for prox in proxes:
        y = prox(y)
    return y


def compose(*proxes: Prox) -> Partial:
    """``compose(p, q)(y) == q(p(y))``: applies the operators left to right."""
    return Partial(_chain, tuple(as_pytree(p) for p in proxes))


def _identity(y):
    return y


identity = Partial(_identity)


def _clip(lo, hi, y):
    return jnp.clip(y, lo, hi)


def clip(lo: float = 0.0, hi: float = 1.0) -> Partial:
    """Projection onto the box ``[lo, hi]`` (the prox of its indicator)."""
    if lo > hi:
        raise ValueError(f"clip needs lo <= hi, got {lo} > {hi}")
    return Partial(_clip, lo, hi)
