"""Gatys et al. style transfer by direct minimisation of LTV (the slow reference).

    python -m experiments.gatys --content C --style S --size 256 --steps 300 -o out.png
"""

from __future__ import annotations

import argparse

import flexsolver as fs
from experiments.common import cli_errors, load_pair
from flexsolver.timing import stopwatch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", required=True, help="content image")
    parser.add_argument("--style", required=True, help="style image")
    parser.add_argument("--size", type=int, default=256, help="max side of both images (px)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--method", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument("--lr", type=float, default=0.02, help="Adam step size")
    parser.add_argument("-o", "--output", required=True, help="output image (png/jpg)")
    args = parser.parse_args(argv)

    with cli_errors():
        x_c, x_s = load_pair(args.content, args.style, args.size)
        fs.images.check_writable(args.output)
        vgg = fs.load_vgg19()
        grams = fs.style_grams(vgg, x_s)
        before = float(fs.ltv(vgg, x_c, x_c, grams))
        with stopwatch() as sw:
            x = sw.block(fs.gatys(vgg, x_c, grams, args.steps, args.method, lr=args.lr, progress=True))
        seconds = sw.seconds
        after = float(fs.ltv(vgg, x, x_c, grams))
        fs.images.save_image(args.output, x)
        print(f"LTV before {before:.4f}  after {after:.4f}  ({100 * after / before:.1f}%)  "
              f"{args.steps} {args.method} steps in {seconds:.1f} s -> {args.output}")


if __name__ == "__main__":
    main()
