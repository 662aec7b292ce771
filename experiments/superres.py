"""User-guided texture super-resolution ×3 (SPEC §4.3): bicubic vs the solver unguided vs guided.

    python -m experiments.superres [--textures DIR] [--limit N] [--size 192] [--checkpoint DIR]
        [--random] [--lam 50] [-o grid.png]

Per texture (luminance Y only, BT.601 full range):

* ground truth ``gt`` = the centre ``size × size`` crop (``size`` rounded down to a multiple of 3);
* ``x_low = D(gt)`` (17×17 Gaussian σ = 3, stride 3: :mod:`flexsolver.superres`);
* the user's example ``X_ref`` = the largest strip of the texture disjoint from ``gt`` (above it
  or left of it), so the guide never contains the ground truth;
* methods: **bicubic** (``X(0)``); **unguided**: ``solve`` from the bicubic start with every
  ``β = 0`` and the data-term prox (so ``X(t+1) = P_R(X(t) − g_t)`` with only the content part of
  the learned update); **guided**: ``β = 1`` on conv1_1…conv4_1, 0 on conv5_1, Grams of
  ``X_ref``. The luminance is replicated into 3 channels for the solver; the prox is
  :func:`flexsolver.superres.luminance_superres_prox` (exact prox of ``ι_grey + λ‖x_low − DX‖²``).

Metrics: **PSNR** (dB) of the clipped output's luminance to ``gt`` (peak 1, whole image);
**Gram SNR** (dB) ``= 10 log10(Σ_l ‖G_l(gt)‖²_F / Σ_l ‖G_l(out) − G_l(gt)‖²_F)`` over conv1_1 …
conv5_1, ``G_l = FᵀF / n`` (:func:`flexsolver.gram`) of the Y image replicated into RGB.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import jax.numpy as jnp
import numpy as np

import flexsolver as fs
from experiments.common import cli_errors, load_solver
from flexsolver import images
from flexsolver import superres as sr
from flexsolver.color import luminance, rgb_to_ycbcr, ycbcr_to_rgb
from flexsolver.timing import stopwatch

METHODS = ("bicubic", "unguided", "guided")
GRID_ROWS = 3


def crops(img: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(centre ``s×s`` crop, largest strip disjoint from it), ``s`` = ``size`` or the smaller
    side, rounded down to a multiple of 3."""
    h, w = img.shape[:2]
    s = min(size, h, w) // sr.FACTOR * sr.FACTOR
    if s < 3 * sr.FACTOR * 2:
        raise ValueError(f"image {w}×{h} too small for a ×3 crop")
    top, left = (h - s) // 2, (w - s) // 2
    gt = img[top : top + s, left : left + s]
    if top * w >= left * h:
        ref = img[:top] if top > 0 else None
    else:
        ref = img[:, :left]
    if ref is None or min(ref.shape[:2]) < 32:
        print(f"warning: no room beside the {s}×{s} crop; X_ref = the bottom-right corner (overlaps)", file=sys.stderr)
        ref = img[h - s :, w - s :]
    return gt, ref


def grams_of(vgg, y: np.ndarray | jnp.ndarray):
    return fs.style_grams(vgg, jnp.repeat(jnp.clip(jnp.asarray(y), 0, 1)[..., None], 3, axis=-1))


def gram_snr(g_out, g_ref) -> float:
    num = sum(float(jnp.sum(g_ref[n] ** 2)) for n in fs.STYLE_LAYERS)
    den = sum(float(jnp.sum((g_out[n] - g_ref[n]) ** 2)) for n in fs.STYLE_LAYERS)
    return float("inf") if den == 0 else 10 * math.log10(num / den)


def run_texture(path, size, solver, vgg, lam):
    """Outputs ``{method: Y}``, metrics ``{method: (psnr, gram_snr, seconds)}``, display images."""
    img = images.load_image(path)
    gt_rgb, ref_rgb = crops(img, size)
    ycc = np.asarray(rgb_to_ycbcr(gt_rgb))
    gt = ycc[..., 0]
    ref = np.asarray(luminance(ref_rgb))
    x_low = sr.degrade(gt)
    with stopwatch() as sw:
        bic = np.asarray(sr.bicubic_upsample(x_low))
    outs, seconds = {"bicubic": bic}, {"bicubic": sw.seconds}
    grams_ref = grams_of(vgg, ref)
    for name in ("unguided", "guided"):
        with stopwatch() as sw:
            out = sr.superresolve_luminance(solver, x_low, grams_ref, lam=lam, guided=name == "guided")
            outs[name] = np.asarray(out)
        seconds[name] = sw.seconds
    g_gt = grams_of(vgg, gt)
    metrics = {
        m: (images.psnr(np.clip(outs[m], 0, 1), gt), gram_snr(grams_of(vgg, outs[m]), g_gt), seconds[m])
        for m in METHODS
    }
    # colour for display: the chroma of the degraded colour image, upsampled bicubically
    chroma = np.asarray(sr.bicubic_upsample(sr.degrade(ycc[..., 1:])))
    colour = lambda y: np.clip(np.asarray(ycbcr_to_rgb(np.concatenate([y[..., None], chroma], -1))), 0, 1)  # noqa: E731
    low_rgb = np.clip(np.asarray(ycbcr_to_rgb(sr.degrade(ycc))), 0, 1)
    display = [gt_rgb, low_rgb] + [colour(np.clip(outs[m], 0, 1)) for m in METHODS]
    return metrics, display


def table(rows: dict[str, dict[str, tuple]]) -> str:
    head = "| texture | " + " | ".join(f"{m} PSNR / Gram SNR (dB)" for m in METHODS) + " |"
    lines = [head, "|---" * (len(METHODS) + 1) + "|"]
    for name, metrics in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{metrics[m][0]:.2f} / {metrics[m][1]:.2f}" for m in METHODS) + " |")
    mean = {m: [np.mean([r[m][k] for r in rows.values()]) for k in (0, 1)] for m in METHODS}
    lines.append("| **mean** | " + " | ".join(f"**{mean[m][0]:.2f} / {mean[m][1]:.2f}**" for m in METHODS) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--textures", default="/work/shared/data/textures", help="folder of texture images")
    parser.add_argument("--limit", type=int, default=None, help="first N textures (sorted by name)")
    parser.add_argument("--size", type=int, default=192, help="ground-truth crop side (rounded down to a multiple of 3)")
    parser.add_argument("--checkpoint", default=None, help="training workdir or exported checkpoint (default: shipped)")
    parser.add_argument("--random", action="store_true", help="random parameters (mechanics only: guided is meaningless)")
    parser.add_argument("--lam", type=float, default=50.0, help="λ_R of the data term")
    parser.add_argument("-o", "--output", default=None, help="optional grid: gt | low | bicubic | unguided | guided")
    args = parser.parse_args(argv)
    with cli_errors():
        if args.output:
            images.check_writable(args.output)
        if not os.path.isdir(args.textures):
            raise FileNotFoundError(f"no texture folder {args.textures}")
        names = sorted(f for f in os.listdir(args.textures) if f.lower().endswith((".png", ".jpg", ".jpeg")))
        names = names[: args.limit] if args.limit else names
        if not names:
            raise ValueError(f"no images in {args.textures}")
        solver, what = load_solver(args.checkpoint, args.random)
        vgg = fs.load_vgg19()
        rows, grid = {}, []
        for name in names:
            metrics, display = run_texture(os.path.join(args.textures, name), args.size, solver, vgg, args.lam)
            rows[name] = metrics
            if len(grid) < GRID_ROWS:
                grid.append(display)
            print(f"{name}: " + ", ".join(f"{m} {metrics[m][2]:.2f}s" for m in METHODS), file=sys.stderr)
        print(f"×3 texture super-resolution, {what}, λ_R = {args.lam}, crop {args.size}; "
              "PSNR to ground truth / SNR of VGG-19 Grams conv1_1…conv5_1 (dB, luminance)\n")
        print(table(rows))
        if args.output:
            images.save_image(args.output, images.image_grid(grid))
            print(f"\nwrote {args.output}: rows = first {len(grid)} textures; gt | low | bicubic | unguided | guided")


if __name__ == "__main__":
    main()
