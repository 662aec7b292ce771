"""flexsolver: a flexible convolutional solver for fast style transfers (Puy & Pérez, CVPR 2019).

The public API, importable from ``flexsolver`` itself:

* VGG-19 and the loss: :func:`load_vgg19`, :func:`vgg_features`, :func:`style_grams`,
  :func:`gram`, :func:`content_loss`, :func:`style_loss`, :func:`mix_grams`, :func:`tv`,
  :func:`alpha`, :func:`ltv`;
* the slow reference: :func:`gatys`;
* the learned solver: :func:`init_params`, :func:`solve`, :func:`load_checkpoint`, and
  :func:`stylize` (images in, image out, with every runtime control);
* proximal operators: :func:`compose`, :data:`identity`, :func:`clip`, :func:`matting_prox`,
  :func:`temporal_prox`, :func:`superres_prox`;
* :func:`enable_compilation_cache`: importing the package points JAX's persistent compilation
  cache at a user cache folder (``FLEXSOLVER_CACHE_DIR`` overrides it, ``off`` disables it).
"""

__version__ = "0.1.0"

from flexsolver.cache import enable_compilation_cache

# Compiled programs persist on disk (flexsolver/cache.py says where, and how to switch it off).
enable_compilation_cache()

from flexsolver import images  # noqa: E402
from flexsolver.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from flexsolver.gatys import gatys  # noqa: E402
from flexsolver.matting import matting_laplacian, matting_prox  # noqa: E402
from flexsolver.losses import (  # noqa: E402
    alpha,
    content_loss,
    gram,
    ltv,
    mix_grams,
    style_grams,
    style_loss,
    tv,
)
from flexsolver.network import init_params, param_count  # noqa: E402
from flexsolver.prox import clip, compose, identity  # noqa: E402
from flexsolver.solver import solve  # noqa: E402
from flexsolver.superres import superres_prox  # noqa: E402
from flexsolver.transfer import stylize  # noqa: E402
from flexsolver.video import temporal_prox  # noqa: E402
from flexsolver.vgg import (  # noqa: E402
    CONTENT_LAYER,
    STYLE_LAYERS,
    VGG19,
    WeightsError,
    load_vgg19,
    vgg_features,
)

__all__ = [
    "CONTENT_LAYER", "CheckpointError", "STYLE_LAYERS", "VGG19", "WeightsError",
    "alpha", "clip", "compose", "enable_compilation_cache", "images", "content_loss", "gatys", "gram", "identity", "init_params",
    "load_checkpoint", "load_vgg19", "ltv", "matting_laplacian", "matting_prox", "mix_grams", "param_count", "solve",
    "style_grams", "style_loss", "stylize", "superres_prox", "temporal_prox", "tv",
    "vgg_features",
]  # fmt: skip
