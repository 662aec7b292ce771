"""Inference time of the learned solver next to AdaIN, on this machine, in one run.

    python benchmarks/solve_speed.py                      # 256×256, 512×512, 1024×512
    python benchmarks/solve_speed.py --quick              # 256×256 only
    python benchmarks/solve_speed.py --sizes 512x256 1024x512 --repeats 5

What is measured (seconds per image, batch 1, float32, on JAX's default device):

* **ours**: ``flexsolver.solve(params, x_c, grams)`` for ``N=4`` iterations at widths ``L=32`` and
  ``L=64``, parameters from ``init_params`` (random: the speed does not depend on the values).
  The style Grams are computed **once, outside the timing**, as a user stylising with a fixed
  style does; ``style_grams`` (VGG-19 up to conv5_1 on the style) is timed on its own in the
  ``Grams s`` column. No prox (no regulariser).
* **AdaIN**: ``make_stylizer(vgg, decoder)(x_c, x_s)`` from ``experiments/baselines/adain.py``;
  this **includes encoding the style** (VGG-19 up to relu4_1) on every call, as the original does,
  plus the content encoding, AdaIN and the decoder.
* style and content have the same size; the pixels are random (speed does not depend on them).
* each function is called once to compile (not timed), then ``--repeats`` times, each call
  ended by ``jax.block_until_ready``; the table reports the median.
* ``ratio`` = ours / AdaIN (below 1: ours is faster).

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
from experiments.baselines.adain import load_decoder, make_stylizer  # noqa: E402
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
    params = {l: fs.init_params(jax.random.key(0), N, l) for l in WIDTHS}
    rng = np.random.default_rng(0)

    rows = []
    for h, w in sizes:
        x_c = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
        x_s = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
        t_adain = median_time(lambda: adain(x_c, x_s), args.repeats)
        t_grams = median_time(lambda: fs.style_grams(vgg, x_s), args.repeats)
        grams = jax.block_until_ready(fs.style_grams(vgg, x_s))
        t_ours = {l: median_time(lambda p=params[l]: fs.solve(p, x_c, grams), args.repeats) for l in WIDTHS}
        row = (f"| {w}×{h} | {t_adain:.3f} | {t_ours[32]:.3f} | {t_ours[32] / t_adain:.2f} "
               f"| {t_ours[64]:.3f} | {t_ours[64] / t_adain:.2f} | {t_grams:.3f} |")
        rows.append(row)
        print(f"done {w}×{h}: {row}", file=sys.stderr, flush=True)

    print()
    print("| size (W×H) | AdaIN s | ours L=32 s | ratio | ours L=64 s | ratio | Grams s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    print()
    print(f"ours: solve with N={N}, style Grams precomputed (their cost is the Grams column); "
          "AdaIN: includes encoding the style; ratio = ours / AdaIN.")


if __name__ == "__main__":
    main()
