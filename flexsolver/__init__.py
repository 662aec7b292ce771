"""flexsolver: a flexible convolutional solver for fast style transfers (Puy & Pérez, CVPR 2019).

The public API, importable from ``flexsolver`` itself:

* VGG-19 and the loss: :func:`load_vgg19`, :func:`vgg_features`, :func:`style_grams`,
  :func:`gram`, :func:`content_loss`, :func:`style_loss`, :func:`mix_grams`, :func:`tv`,
  :func:`alpha`, :func:`ltv`;
* the slow reference: :func:`gatys`;
* the learned solver: :func:`init_params`, :func:`solve`, :func:`load_checkpoint`, and
  :func:`stylize` (images in, image out, with every runtime control);
* proximal operators: :func:`compose`, :data:`identity`, :func:`clip`, :func:`matting_prox`,
  :func:`temporal_prox`, :func:`superres_prox`.
"""

__version__ = "0.1.0"

from flexsolver import images
from flexsolver.checkpoint import CheckpointError, load_checkpoint
from flexsolver.gatys import gatys
from flexsolver.matting import matting_laplacian, matting_prox
from flexsolver.losses import (
    alpha,
    content_loss,
    gram,
    ltv,
    mix_grams,
    style_grams,
    style_loss,
    tv,
)
from flexsolver.network import init_params, param_count
from flexsolver.prox import clip, compose, identity
from flexsolver.solver import solve
from flexsolver.superres import superres_prox
from flexsolver.transfer import stylize
from flexsolver.video import temporal_prox
from flexsolver.vgg import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    VGG19,
    WeightsError,
    load_vgg19,
    vgg_features,
)

__all__ = [
    "CONTENT_LAYER", "CheckpointError", "STYLE_LAYERS", "VGG19", "WeightsError",
    "alpha", "clip", "compose", "images", "content_loss", "gatys", "gram", "identity", "init_params",
    "load_checkpoint", "load_vgg19", "ltv", "matting_laplacian", "matting_prox", "mix_grams", "param_count", "solve",
    "style_grams", "style_loss", "stylize", "superres_prox", "temporal_prox", "tv",
    "vgg_features",
]  # fmt: skip
