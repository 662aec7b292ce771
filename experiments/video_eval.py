"""Flicker of video stylisation: warping error (Lai et al. 2018) and mean LTV, as a markdown table.

    python -m experiments.video_eval [--video V] [--style S] [--frames 60] [--max-side 640]
        [--lam 0.37] [--checkpoint DIR] [--random]

Warping error of a stylised clip ``O``: ``E = mean_t Σ_p M_t(p)‖w_t(O_t)(p) − O_{t+1}(p)‖² / Σ_p M_t(p)``
(squared norm over RGB in [0,1]), where ``w_t`` warps frame ``t`` onto ``t+1`` with the DIS flow
of the *input* frames and ``M_t`` is their consistency mask (``flexsolver.video``). Rows:

* ours, per frame;
* ours + temporal prox (online, SPEC §4.2);
* AdaIN, per frame (the fast baseline);
* AdaIN + temporal prox as a post-process: ``O_{t+1} = P(AdaIN(frame_{t+1}))`` with
  ``P = temporal_prox(w_t(O_t), M_t)`` (the paper's fairness check).

Mean LTV per frame (content = the input frame, β = 1) shows whether the consistency is bought by
dropping style.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

import flexsolver as fs
from experiments.common import cli_errors, load_solver
from flexsolver import images
from flexsolver import video as fv
from flexsolver.shipped import example
from flexsolver.timing import stopwatch
from flexsolver.vgg import WeightsError

DEFAULT_VIDEO = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "bigbuckbunny.mp4")


def warping_errors(outputs, flow_masks) -> list[float]:
    return [fv.warping_error(a, b, w_bw, m) for (a, b), (w_bw, m) in zip(zip(outputs[:-1], outputs[1:]), flow_masks)]


def temporal_postprocess(outputs, flow_masks, lam: float) -> list[np.ndarray]:
    """Online: ``O_0 = X_0``, ``O_{t+1} = P_t(X_{t+1})`` with the temporal prox of ``w_t(O_t)``."""
    res = [np.asarray(outputs[0])]
    for x, (w_bw, m) in zip(outputs[1:], flow_masks):
        prox = fv.temporal_prox(fv.warp(res[-1], w_bw), m, lam)
        res.append(np.clip(np.asarray(prox(np.asarray(x, np.float32))), 0.0, 1.0))
    return res


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=DEFAULT_VIDEO)
    parser.add_argument("--style", default=str(example("great_wave.jpg")))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument("--lam", type=float, default=0.37)
    parser.add_argument("--checkpoint", default=None, help="training workdir or exported checkpoint (default: shipped)")
    parser.add_argument("--random", action="store_true", help="random parameters (shows the mechanics only)")
    parser.add_argument("--no-adain", action="store_true", help="skip the AdaIN rows")
    args = parser.parse_args(argv)
    with cli_errors():
        frames = fv.read_frames(args.video, max_side=args.max_side, max_frames=args.frames)
        if len(frames) < 2:
            raise ValueError(f"{args.video}: need at least 2 frames, got {len(frames)}")
        x_s = images.load_image(args.style, max_side=args.max_side)
        solver, what = load_solver(args.checkpoint, args.random)
        vgg = fs.load_vgg19()
        grams = fs.style_grams(vgg, x_s)
        with stopwatch() as sw:
            flow_masks = fv.flows(frames)
        t_flow = sw.seconds

        ltv_jit = jax.jit(lambda vgg, x, x_c, grams: fs.ltv(vgg, x, x_c, grams))
        results = {}

        def add(name, outputs):
            errs = warping_errors(outputs, flow_masks)
            ltvs = [float(ltv_jit(vgg, o, f, grams)) for o, f in zip(outputs, frames)]
            results[name] = (float(np.mean(errs)), float(np.mean(ltvs)), float(np.std(ltvs)))

        kw = dict(lam=args.lam, flow_masks=flow_masks)
        add("ours, per frame", list(fv.stylize_clip(solver, frames, grams, temporal=False, **kw)))
        add("ours + temporal prox", list(fv.stylize_clip(solver, frames, grams, temporal=True, **kw)))
        if not args.no_adain:
            try:
                from experiments.baselines.adain import load_decoder, make_stylizer

                stylizer = make_stylizer(vgg, load_decoder())
            except WeightsError as e:
                print(f"warning: skipping AdaIN: {e}", file=sys.stderr)
            else:
                ada = [np.asarray(stylizer(f, x_s)) for f in frames]
                add("AdaIN, per frame", ada)
                add("AdaIN + temporal prox (post-process)", temporal_postprocess(ada, flow_masks, args.lam))

        h, w = frames[0].shape[:2]
        masked = 1.0 - np.mean([m.mean() for _, m in flow_masks])
        print(f"\n{args.video}: {len(frames)} frames {w}×{h}, style {args.style}, λ_R = {args.lam}, {what}; "
              f"DIS flows {t_flow:.1f} s, {100 * masked:.1f}% of pixels masked out on average\n")
        print("| method | warping error ↓ | mean LTV per frame (± std) |")
        print("|---|---|---|")
        for name, (err, mean, std) in results.items():
            print(f"| {name} | {err:.5f} | {mean:.4f} ± {std:.4f} |")
        base = results["ours, per frame"]
        tem = results["ours + temporal prox"]
        print(f"\nours: warping error ratio temporal/per-frame = {tem[0] / base[0]:.3f} (goal ≤ 0.5), "
              f"LTV change = {100 * (tem[1] / base[1] - 1):+.1f}% (goal within ±10%)")


if __name__ == "__main__":
    main()
