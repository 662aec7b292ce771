"""Runtime restructuring without retraining (SPEC §4), as one image grid.

    python -m experiments.restructure [--checkpoint DIR] [--content C --style S --style2 S2] -o out.png

Rows: (1) one style scale at a time, then all; (2) global intensity 0.2 … 1.4; (3) mixing two
styles, α = 0 … 1; (4) two styles on the two halves of the content (spatial masks), with the masks.
Uses the shipped checkpoint by default, or random parameters with ``--random`` (or when no
checkpoint is shipped yet).
"""

from __future__ import annotations

import argparse

import numpy as np

import flexsolver as fs
from experiments.common import cli_errors, load_pair, load_solver
from flexsolver import images
from flexsolver.shipped import example

INTENSITIES = (0.2, 0.6, 1.0, 1.4)
MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)


def grid(solver, vgg, x_c, x_s, x_s2) -> np.ndarray:
    g1, g2 = fs.style_grams(vgg, x_s), fs.style_grams(vgg, x_s2)
    run = lambda grams, **kw: np.clip(np.asarray(fs.solve(solver, x_c, grams, **kw)), 0, 1)  # noqa: E731
    one_hot = lambda k: {n: float(n == k) for n in fs.STYLE_LAYERS}  # noqa: E731  (one compile for all)
    scales = [run(g1, style_weights=one_hot(name)) for name in fs.STYLE_LAYERS] + [run(g1)]
    intensity = [run(g1, style_weights={n: s for n in fs.STYLE_LAYERS}) for s in INTENSITIES]
    mixing = [run(fs.mix_grams([g1, g2], [1 - a, a])) for a in MIXES]
    h, w = x_c.shape[:2]
    left = np.zeros((h, w), np.float32)
    left[:, : w // 2] = 1.0
    spatial = run([g1, g2], masks=[left, 1.0 - left])
    mask_img = np.repeat(left[..., None], 3, axis=-1)
    return images.image_grid([
        [x_c, x_s, *scales],
        [x_c, x_s, *intensity],
        [x_s, x_s2, *mixing],
        [x_s, x_s2, mask_img, spatial],
    ])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="training workdir or exported checkpoint (default: shipped)")
    parser.add_argument("--random", action="store_true", help="random parameters (shows the mechanics only)")
    parser.add_argument("--content", default=str(example("astronaut.jpg")))
    parser.add_argument("--style", default=str(example("great_wave.jpg")))
    parser.add_argument("--style2", default=str(example("van_gogh_auvers.jpg")))
    parser.add_argument("--size", type=int, default=256, help="max side (px)")
    parser.add_argument("-o", "--output", default="restructure.png")
    args = parser.parse_args(argv)
    with cli_errors():
        images.check_writable(args.output)
        x_c, x_s = load_pair(args.content, args.style, args.size)
        x_s2 = images.load_image(args.style2, max_side=args.size)
        solver, what = load_solver(args.checkpoint, args.random)
        out = grid(solver, fs.load_vgg19(), x_c, x_s, x_s2)
        images.save_image(args.output, out)
        print(f"wrote {args.output} ({what}): rows = scales conv1_1…conv5_1 then all | "
              f"intensity {INTENSITIES} | mixing α {MIXES} | two styles on two halves")


if __name__ == "__main__":
    main()
