"""Photorealistic style transfer (SPEC §4.1): the solver with the matting-Laplacian prox.

    python -m experiments.photo --content C --style S -o out.png [--checkpoint DIR] [--random]
        [--lam 50] [--size 256] [--gatys-steps 0]

Writes one row: content | style | ours without prox | ours with ``matting_prox(x_c, λ)`` then
``clip(0, 1)`` | (with ``--gatys-steps N > 0``) the slow reference, Luan et al.'s deep photo
style transfer ≈ ``gatys(…, prox=matting_prox(x_c, λ) ∘ clip)`` (N proximal Adam steps).
Prints the time of each (first call includes compilation; the solver is also timed warm).
"""

from __future__ import annotations

import argparse

import numpy as np

import flexsolver as fs
from experiments.common import cli_errors, load_pair, load_solver
from flexsolver import images
from flexsolver.matting import matting_prox
from flexsolver.timing import timed


def run(solver, vgg, x_c, x_s, lam: float, gatys_steps: int = 0):
    """(list of output images, list of (label, seconds))."""
    grams = fs.style_grams(vgg, x_s)
    timings = []

    def ours(prox, label):
        call = lambda: fs.solve(solver, x_c, grams, prox=prox)  # noqa: E731
        out, first = timed(call)
        _, warm = timed(call)
        timings.append((f"{label} (first call, with compilation)", first))
        timings.append((f"{label} (warm)", warm))
        return np.clip(np.asarray(out), 0, 1)

    plain = ours(None, "ours, no prox")
    prox, build = timed(lambda: fs.compose(matting_prox(x_c, lam), fs.clip(0.0, 1.0)))
    timings.append(("matting Laplacian + prox build", build))
    photo = ours(prox, f"ours, matting prox λ={lam:g}")
    outs = [plain, photo]
    if gatys_steps > 0:
        ref, secs = timed(lambda: fs.gatys(vgg, x_c, grams, steps=gatys_steps, method="adam", prox=prox))
        timings.append((f"Gatys + matting prox, {gatys_steps} proximal Adam steps", secs))
        outs.append(np.asarray(ref))
    return outs, timings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("-o", "--output", default="photo.png")
    parser.add_argument("--checkpoint", default=None, help="training workdir or exported checkpoint (default: shipped)")
    parser.add_argument("--random", action="store_true", help="random parameters (shows the mechanics only)")
    parser.add_argument("--lam", type=float, default=50.0, help="λ_L of the matting regulariser")
    parser.add_argument("--size", type=int, default=256, help="max side (px)")
    parser.add_argument("--gatys-steps", type=int, default=0, help="also run the slow reference for N steps")
    args = parser.parse_args(argv)
    with cli_errors():
        if args.gatys_steps < 0:
            raise ValueError(f"--gatys-steps must be >= 0, got {args.gatys_steps}")
        if args.lam < 0:
            raise ValueError(f"--lam must be >= 0, got {args.lam}")
        images.check_writable(args.output)
        x_c, x_s = load_pair(args.content, args.style, args.size)
        solver, what = load_solver(args.checkpoint, args.random)
        outs, timings = run(solver, fs.load_vgg19(), x_c, x_s, args.lam, args.gatys_steps)
        images.save_image(args.output, images.image_grid([[x_c, x_s, *outs]]))
        cols = "content | style | ours | ours + matting prox" + (" | Gatys + matting prox" if args.gatys_steps else "")
        print(f"wrote {args.output} ({what}, {x_c.shape[1]}×{x_c.shape[0]}): {cols}")
        for label, secs in timings:
            print(f"  {label}: {secs:.3f} s")


if __name__ == "__main__":
    main()
