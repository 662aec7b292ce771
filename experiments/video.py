"""Online video style transfer with short-term temporal consistency (SPEC §4.2).

    python -m experiments.video IN STYLE -o OUT.mp4 [--max-side 640] [--frames N] [--photo]
        [--no-temporal] [--lam 0.37] [--checkpoint DIR] [--random]

Frame ``i+1`` is stylised with the prox ``P = temporal_prox(warp(X(i), w_bw), M)`` (after the
photorealism prox of the frame with ``--photo``, then clipping to [0,1]), where ``X(i)`` is the
stylised frame ``i``, ``w_bw`` the DIS flow of the *input* frames ``i+1 → i`` and ``M`` the
consistency mask. The style Grams are computed once; the solver is compiled once for the clip:
every frame gets a prox of the same pytree structure (frame 0, and all frames with
``--no-temporal``, get a temporal prox with ``M = 0``, which is the identity).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import flexsolver as fs
from experiments.common import cli_errors, load_solver
from flexsolver import images
from flexsolver import video as fv
from flexsolver.matting import matting_prox
from flexsolver.prox import clip, compose


def frame_prox(frame, warped, mask, lam: float, photo: bool):
    """The prox for one frame: [matting of the frame] → temporal → clip to [0,1]."""
    parts = [matting_prox(frame)] if photo else []
    parts += [fv.temporal_prox(warped, mask, lam), clip(0.0, 1.0)]
    return compose(*parts)


def stylise_clip(
    params,
    frames,
    grams,
    *,
    nonlinearity: str = "heaviside",
    temporal: bool = True,
    photo: bool = False,
    lam: float = 0.37,
    flow_masks=None,
    progress: bool = True,
):
    """Yields the stylised frames (float32 ``(H,W,3)`` in [0,1]) one by one, online.

    ``flow_masks``: precomputed :func:`flexsolver.video.flows` of ``frames`` (computed here,
    pair by pair, when ``None`` and ``temporal``).
    """
    from tqdm import tqdm

    h, w = frames[0].shape[:2]
    no_mask = np.zeros((h, w), np.float32)
    prev = None
    bar = tqdm(total=len(frames), unit="frame", disable=not progress, file=sys.stderr)
    try:
        for i, frame in enumerate(frames):
            if temporal and prev is not None:
                if flow_masks is not None:
                    w_bw, mask = flow_masks[i - 1]
                else:
                    w_bw, mask = fv.flows([frames[i - 1], frame])[0]
                warped = fv.warp(prev, w_bw)
            else:
                warped, mask = np.zeros_like(frame), no_mask
            prox = frame_prox(frame, warped, mask, lam, photo)
            out = np.asarray(fs.solve(params, frame, grams, prox=prox, nonlinearity=nonlinearity))
            prev = out
            bar.update(1)
            yield out
    finally:
        bar.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="video file (mp4, avi, …)")
    parser.add_argument("style", help="style image")
    parser.add_argument("-o", "--output", required=True, help="output .mp4")
    parser.add_argument("--max-side", type=int, default=640, help="downscale frames to this longest side (px)")
    parser.add_argument("--style-size", type=int, default=None, help="style image max side (default: --max-side)")
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames")
    parser.add_argument("--photo", action="store_true", help="photorealistic: compose with the matting prox")
    parser.add_argument("--no-temporal", action="store_true", help="per-frame stylisation (no temporal prox)")
    parser.add_argument("--lam", type=float, default=0.37, help="λ_R of the temporal prox")
    parser.add_argument("--checkpoint", default=None, help="training workdir or exported checkpoint (default: shipped)")
    parser.add_argument("--random", action="store_true", help="random parameters (shows the mechanics only)")
    args = parser.parse_args(argv)
    with cli_errors():
        fv.check_video_writable(args.output)
        if args.lam < 0:
            raise ValueError(f"--lam must be >= 0, got {args.lam}")
        frames = fv.read_frames(args.input, max_side=args.max_side, max_frames=args.frames)
        fps = fv.fps_of(args.input)
        x_s = images.load_image(args.style, max_side=args.style_size or args.max_side)
        params, nonlinearity, what = load_solver(args.checkpoint, args.random)
        grams = fs.style_grams(fs.load_vgg19(), x_s)
        start = time.perf_counter()
        with fv.VideoWriter(args.output, fps=fps) as writer:
            writer.write_all(
                stylise_clip(
                    params, frames, grams, nonlinearity=nonlinearity, temporal=not args.no_temporal,
                    photo=args.photo, lam=args.lam,
                )
            )
        elapsed = time.perf_counter() - start
        h, w = frames[0].shape[:2]
        print(f"wrote {args.output}: {writer.count} frames {w}×{h} in {elapsed:.1f} s "
              f"({writer.count / elapsed:.2f} frames/s incl. compilation and flow; {what}; "
              f"{'per-frame' if args.no_temporal else f'temporal λ={args.lam}'}{', photo' if args.photo else ''})")


if __name__ == "__main__":
    main()
