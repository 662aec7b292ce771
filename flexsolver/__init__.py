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

# The public names, by the module that defines them. They are imported on first use (PEP 562),
# so ``import flexsolver`` and the command line load only what they touch: the photo prox's
# sparse matrices, the video tools or super-resolution cost nothing until used.
_PUBLIC = {
    "flexsolver.checkpoint": ("CheckpointError", "load_checkpoint"),
    "flexsolver.matting": ("matting_laplacian", "matting_prox"),
    "flexsolver.losses": ("alpha", "content_loss", "gram", "ltv", "mix_grams", "style_grams", "style_loss", "tv"),
    "flexsolver.network": ("init_params", "param_count"),
    "flexsolver.prox": ("clip", "compose", "identity"),
    "flexsolver.solver": ("solve",),
    "flexsolver.superres": ("superres_prox",),
    "flexsolver.transfer": ("stylize",),
    "flexsolver.video": ("temporal_prox",),
    "flexsolver.vgg": ("CONTENT_LAYER", "STYLE_LAYERS", "VGG19", "WeightsError", "load_vgg19", "vgg_features"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}

# ``gatys`` is also the name of its module: importing ``flexsolver.gatys`` anywhere would set the
# package attribute to the module, so the function is bound here, at import, as before.
from flexsolver.gatys import gatys  # noqa: E402


def __getattr__(name: str):
    import importlib

    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name == "images":
        return importlib.import_module("flexsolver.images")
    raise AttributeError(f"module 'flexsolver' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CONTENT_LAYER", "CheckpointError", "STYLE_LAYERS", "VGG19", "WeightsError",
    "alpha", "clip", "compose", "enable_compilation_cache", "images", "content_loss", "gatys", "gram", "identity", "init_params",
    "load_checkpoint", "load_vgg19", "ltv", "matting_laplacian", "matting_prox", "mix_grams", "param_count", "solve",
    "style_grams", "style_loss", "stylize", "superres_prox", "temporal_prox", "tv",
    "vgg_features",
]  # fmt: skip
