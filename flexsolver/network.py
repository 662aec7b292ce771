"""One learned iteration ``g_t`` of the unrolled solver (SPEC §2), as pure functions.

For widths ``c = (L, 2L, 4L, 8L, 8L)`` at scales ``1, ½, ¼, ⅛, 1/16`` and the VGG-19 widths
``C = (64, 128, 256, 512, 512)`` of conv1_1 … conv5_1:

1. forward maps: ``A_1 = conv_1(X)``, ``A_k = conv_k(pool(relu(A_{k-1})))``, ``f_k = relu(A_k)``
   (3×3 convs with bias, reflection padding, 2×2 max-pooling);
2. style filter: ``D_k = Σ_i M_k^i · f_k · (G_kᵀ gram_k^i H_k) / α_i`` — a 1×1 convolution per
   style ``i`` (one style and no mask: ``M = 1``);
3. backward maps, one per scale ``k`` (untied): ``B = D_k``, then for ``j = k … 1``:
   ``B ← conv_{k,j}(B · h(A_j))`` with ``c_j → c_{j-1}`` channels (``c_0 = 3``), bias-free
   (back-propagation is linear), followed by nearest ×2 upsampling while ``j > 1``.
   ``h`` = Heaviside of the forward pre-activation, without gradient; the ablation replaces
   ``B · h(A_j)`` by ``relu(B)``;
4. ``g_t = Σ_k β_k · b_k(D_k)``.

Parameters of one iteration (exact, tested)::

    forward   Σ_k 9 c_{k-1} c_k + c_k            (c_0 = 3)
    filters   Σ_k 2 C_k c_k
    backward  Σ_k Σ_{j≤k} 9 c_j c_{j-1}

(times ``N`` iterations; :func:`param_count`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
from flax import struct

from flexsolver.losses import alpha, resize_mask
from flexsolver.conv import conv3x3, conv3x3_sum
from flexsolver.vgg import STYLE_LAYERS, max_pool2

VGG_WIDTHS = (64, 128, 256, 512, 512)
WIDTH_FACTORS = (1, 2, 4, 8, 8)
NONLINEARITIES = ("heaviside", "relu")


def widths(l: int) -> tuple[int, ...]:
    """Channels of the forward maps: ``(L, 2L, 4L, 8L, 8L)``."""
    return tuple(f * l for f in WIDTH_FACTORS)


def param_count(n: int, l: int) -> int:
    """Number of trained scalars of an ``n``-iteration, width-``l`` solver."""
    c = (3,) + widths(l)
    forward = sum(9 * c[k - 1] * c[k] + c[k] for k in range(1, 6))
    filters = sum(2 * big * small for big, small in zip(VGG_WIDTHS, c[1:]))
    backward = sum(9 * c[j] * c[j - 1] for k in range(1, 6) for j in range(1, k + 1))
    return n * (forward + filters + backward)


def _xavier(key, shape, fan_in, fan_out):
    """Glorot-uniform: ``U[−s, s]``, ``s = √(6 / (fan_in + fan_out))``."""
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return jax.random.uniform(key, shape, minval=-limit, maxval=limit)


OUTPUT_SCALE = 0.1


def init_iteration(key: jax.Array, l: int, output_scale: float = OUTPUT_SCALE) -> dict:
    """Parameters of one learned iteration ``g_t`` (Xavier-uniform weights, zero biases).

    The last conv of every backward map (to the 3 image channels) is Xavier times
    ``output_scale``, so that ``X(t)`` starts near ``x_c``, as residual networks are usually
    initialised: with plain Xavier one iteration of a random solver changes pixels by 0.03–0.11
    on average and the first training steps only undo that noise.
    """
    c = (3,) + widths(l)
    keys = iter(jax.random.split(key, 32))
    forward, filters, backward = [], [], []
    for k in range(1, 6):
        forward.append({
            "w": _xavier(next(keys), (3, 3, c[k - 1], c[k]), 9 * c[k - 1], 9 * c[k]),
            "b": jnp.zeros((c[k],)),
        })
        filters.append({
            "g": _xavier(next(keys), (VGG_WIDTHS[k - 1], c[k]), VGG_WIDTHS[k - 1], c[k]),
            "h": _xavier(next(keys), (VGG_WIDTHS[k - 1], c[k]), VGG_WIDTHS[k - 1], c[k]),
        })
        # backward[k-1][j-1] maps c_j → c_{j-1}; index j-1 runs over the stages j = 1..k.
        backward.append([
            _xavier(next(keys), (3, 3, c[j], c[j - 1]), 9 * c[j], 9 * c[j - 1])
            * (output_scale if j == 1 else 1.0)
            for j in range(1, k + 1)
        ])
    return {"forward": forward, "filters": filters, "backward": backward}


_init_iteration_jit = jax.jit(init_iteration, static_argnames=("l", "output_scale"))


@struct.dataclass
class Solver:
    """Trained parameters with the static facts needed to run them.

    Attributes:
      params: ``{"iterations": [iteration_0, …]}`` (:func:`init_iteration` each): the only leaves.
      n, l: iterations and width (static).
      nonlinearity: the backward maps' gate the parameters were trained with (static).

    A pytree like :class:`flexsolver.vgg.VGG19`: it crosses ``jit``, and ``solve`` reads the gate
    from it, so a ReLU-trained solver cannot be run with the Heaviside gate by mistake.
    """

    params: dict
    n: int = struct.field(pytree_node=False)
    l: int = struct.field(pytree_node=False)
    nonlinearity: str = struct.field(pytree_node=False, default="heaviside")


def check_nonlinearity(nonlinearity: str) -> str:
    """``nonlinearity`` if it is one of :data:`NONLINEARITIES`, else a one-line ``ValueError``."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    return nonlinearity


def split_solver(solver, nonlinearity: str | None = None) -> tuple[dict, str]:
    """``(params dict, gate)`` of a :class:`Solver` or of a bare parameter dict. A gate given with
    a :class:`Solver` must be its own; a bare dict runs with ``nonlinearity`` (default Heaviside)."""
    if isinstance(solver, Solver):
        if nonlinearity is not None and nonlinearity != solver.nonlinearity:
            raise ValueError(f"this solver was trained with the {solver.nonlinearity!r} gate, not {nonlinearity!r}")
        return solver.params, solver.nonlinearity
    return solver, check_nonlinearity(nonlinearity or "heaviside")


def init_params(
    key: jax.Array, n: int = 4, l: int = 64, output_scale: float = OUTPUT_SCALE, nonlinearity: str = "heaviside"
) -> Solver:
    """A random ``n``-iteration :class:`Solver` of width ``l`` (Xavier; see :func:`init_iteration`)."""
    if n < 1 or l < 1:
        raise ValueError(f"need n >= 1 and l >= 1, got n={n}, l={l}")
    check_nonlinearity(nonlinearity)
    params = {"iterations": [_init_iteration_jit(k, l, output_scale) for k in jax.random.split(key, n)]}
    return Solver(params, n=n, l=l, nonlinearity=nonlinearity)


def heaviside(a: jax.Array) -> jax.Array:
    """``h(A) = 1[A > 0]``, the sub-gradient of ReLU, with no gradient of its own."""
    return jax.lax.stop_gradient((a > 0).astype(a.dtype))


def upsample2(x: jax.Array) -> jax.Array:
    """Nearest-neighbour ×2 upsampling of ``(B,h,w,c)``."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def style_filters(
    params_t: dict, styles: Sequence[Mapping[str, jax.Array]]
) -> list[list[jax.Array]]:
    """``G_kᵀ gram_k^i H_k / α_i`` for every style ``i`` and scale ``k``: ``(…, c_k, c_k)``."""
    out = []
    for grams in styles:
        norm = alpha(grams)[..., None, None]
        out.append([
            jnp.einsum("Cc,...CD,Dd->...cd", p["g"], grams[name], p["h"]) / norm
            for p, name in zip(params_t["filters"], STYLE_LAYERS)
        ])
    return out


def iteration(
    params_t: dict,
    x: jax.Array,
    styles: Sequence[Mapping[str, jax.Array]],
    style_weights: Mapping[str, jax.Array],
    masks: Sequence[jax.Array] | None,
    nonlinearity: str = "heaviside",
) -> jax.Array:
    """The learned update ``g_t(X)``.

    Args:
      params_t: one iteration's parameters (:func:`init_iteration`).
      x: ``(B,H,W,3)``, ``H`` and ``W`` multiples of 16.
      styles: list of Gram dicts ``{layer: (c,c) or (B,c,c)}``, one per style.
      style_weights: ``{layer: β}``, scalars or ``(B,)``; missing layers are off.
      masks: ``None`` (one style) or one ``(B,H,W)`` or ``(H,W)`` mask per style.
      nonlinearity: ``"heaviside"`` (the paper's gate) or ``"relu"`` (the ablation).
    Returns:
      ``(B,H,W,3)``.
    """
    chex.assert_rank(x, 4)
    check_nonlinearity(nonlinearity)
    # 1. forward maps, keeping pre-activations.
    pre = []
    h = x
    for k, p in enumerate(params_t["forward"]):
        if k > 0:
            h = max_pool2(h)
        a = conv3x3(h, p["w"], p["b"])
        pre.append(a)
        h = jax.nn.relu(a)
    # 2. style filters, 3. backward maps, 4. weighted sum. Every map ends with a conv to the 3
    # image channels at full resolution; as that conv is linear, β_k · conv_k(B_k) summed over k
    # is one convolution of all the β_k · B_k (conv3x3_sum: one wide convolution instead of five
    # thin ones).
    kernels = style_filters(params_t, styles)
    gate = (lambda b, a: b * heaviside(a)) if nonlinearity == "heaviside" else (lambda b, a: jax.nn.relu(b))
    last_inputs, last_kernels = [], []
    for k, name in enumerate(STYLE_LAYERS):
        if name not in style_weights:
            continue
        f = jax.nn.relu(pre[k])
        d = 0.0
        for i, per_style in enumerate(kernels):
            kernel = per_style[k]
            spec = "bhwc,cd->bhwd" if kernel.ndim == 2 else "bhwc,bcd->bhwd"
            term = jnp.einsum(spec, f, kernel)
            if masks is not None:
                m = resize_mask(jnp.asarray(masks[i], f.dtype), f.shape[1:3])
                term = term * (m[..., None] if m.ndim == 3 else m[None, ..., None])
            d = d + term
        b = d
        for j in range(k, 0, -1):
            b = upsample2(conv3x3(gate(b, pre[j]), params_t["backward"][k][j]))
        beta = jnp.asarray(style_weights[name], x.dtype)
        last_inputs.append(beta.reshape(beta.shape + (1,) * (4 - beta.ndim)) * gate(b, pre[0]))
        last_kernels.append(params_t["backward"][k][0])
    if not last_inputs:
        return jnp.zeros_like(x)
    return conv3x3_sum(last_inputs, last_kernels)
