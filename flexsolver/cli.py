"""The ``flexsolver`` command (also ``python -m flexsolver``).

    flexsolver stylize CONTENT STYLE [STYLE ...] -o OUT.png [--weights 0.7 0.3 | --mask M1 --mask M2]
        [--scales conv1_1,conv2_1] [--intensity 1.0] [--photo [--lam 50]] [--preserve-color]
        [--max-side 1024] [--checkpoint DIR]
    flexsolver stylize CONTENT_DIR STYLE -o OUT_DIR          # every image of a folder
    flexsolver stylize --example -o stylized.png             # shipped images and model
    flexsolver video IN.mp4 STYLE -o OUT.mp4 [--max-side 640] [--frames N] [--photo] [--no-temporal]
    flexsolver superres LOW.png [--guide TEXTURE] -o OUT.png [--lam 50]

Every expected failure (a missing or unreadable file, a style that is not an image, masks of the
wrong size or count, weights that do not sum to 1, an incompatible or corrupt checkpoint, an output
in a missing folder) prints one line on stderr and exits with code 2 before anything is written;
outputs are written to a temporary file and renamed, so there is never a half-written file.
Images larger than ``--max-side`` are downscaled with a warning; an explicit ``--max-side 0``
(full resolution) is still capped to what the available memory holds (:func:`memory_max_side`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from flexsolver.inputs import DEFAULT_MAX_SIDE, fit_mask, load_solver, memory_max_side, read_content, read_mask, warn
from flexsolver.timing import Stopwatch, stopwatch


@contextlib.contextmanager
def cli_errors():
    """Turns expected user errors into one line on stderr and exit code 2 (130 on Ctrl-C)."""
    from flexsolver.images import ImageError
    from flexsolver.vgg import WeightsError

    try:
        yield
    except (ImageError, WeightsError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        text = " ".join(str(e).split()) or type(e).__name__
        print(f"error: {text}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def _contents(path: str) -> list[Path]:
    from flexsolver import images

    p = Path(path)
    if p.is_dir():
        files = [Path(f) for f in images.list_images(p)]
        if not files:
            raise ValueError(f"folder {p} holds no image ({', '.join(images.IMAGE_SUFFIXES)})")
        return files
    if not p.exists():
        raise FileNotFoundError(f"content {p} does not exist")
    return [p]


def _output_paths(contents: list[Path], output: str, is_dir: bool, fmt: str) -> list[Path]:
    from flexsolver import images

    if not is_dir:
        images.check_writable(output)
        return [Path(output)]
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {out} exists and is not a folder (the content is a folder)")
    if not out.parent.absolute().is_dir():
        raise FileNotFoundError(f"cannot write to {out}: folder {out.parent.absolute()} does not exist")
    return [out / f"{c.stem}.{fmt}" for c in contents]


def stylize_command(args) -> None:
    import flexsolver as fs
    from flexsolver import images
    from flexsolver.shipped import example
    from flexsolver.transfer import check_mix_weights, style_weights_for, stylize

    if args.example:
        if args.content or args.styles:
            raise ValueError("--example uses the shipped images; give no CONTENT or STYLE with it")
        args.content, args.styles = str(example("astronaut.jpg")), [str(example("great_wave.jpg"))]
    elif not args.content or not args.styles:
        raise ValueError("give a CONTENT image (or folder) and at least one STYLE image, or --example")
    if args.output is None:
        if not args.example:
            raise ValueError("give the output path with -o OUT")
        args.output = "stylized.png"
    # Validate every option before any long work.
    if args.max_side < 0:
        raise ValueError(f"--max-side must be >= 0 (0: full size), got {args.max_side}")
    if args.lam is not None and args.lam < 0:
        raise ValueError(f"--lam must be >= 0, got {args.lam}")
    scales = None if args.scales is None else [s.strip() for s in args.scales.split(",") if s.strip()]
    style_weights_for(scales, args.intensity)
    if args.weights is not None and args.masks:
        raise ValueError("use --weights (mixing) or --mask (one region per style), not both")
    if args.weights is not None:
        check_mix_weights(args.weights, len(args.styles))
    if args.masks and len(args.masks) != len(args.styles):
        raise ValueError(f"{len(args.styles)} style(s) but {len(args.masks)} --mask; give one mask per style")
    contents = _contents(args.content)
    is_dir = Path(args.content).is_dir()
    outputs = _output_paths(contents, args.output, is_dir, args.format)
    photo_lam = (50.0 if args.lam is None else args.lam) if args.photo else None
    style_images = [images.load_image(s, max_side=args.style_size or (args.max_side or DEFAULT_MAX_SIDE))
                    for s in args.styles]
    mask_images = [(m, read_mask(m)) for m in args.masks or []]  # read once, fitted to each content
    solver, what = load_solver(args.checkpoint)
    vgg = fs.load_vgg19()
    grams = None if args.preserve_color else [fs.style_grams(vgg, s) for s in style_images]
    if is_dir:
        Path(args.output).mkdir(exist_ok=True)

    from tqdm import tqdm

    failures = []
    clock = Stopwatch()  # runs until read
    bar = tqdm(list(zip(contents, outputs)), unit="image", disable=len(contents) == 1 or args.quiet, file=sys.stderr)
    for content, output in bar:
        try:
            x_c, stored_size = read_content(content, args.max_side, args.photo)
            masks = [fit_mask(p, m, stored_size, x_c.shape[:2]) for p, m in mask_images] or None
            out = stylize(solver, vgg, x_c, style_images if grams is None else grams, weights=args.weights,
                          masks=masks, scales=scales, intensity=args.intensity, photo_lam=photo_lam,
                          preserve_color=args.preserve_color)
            images.save_image(output, out)  # stylize returns a numpy array: the work is done
        except (ValueError, OSError) as e:
            if not is_dir:
                raise
            failures.append(f"{content}: {' '.join(str(e).split())}")
            warn(f"skipped {failures[-1]}")
    elapsed = clock.seconds
    done = len(contents) - len(failures)
    if not args.quiet:
        where = outputs[0] if not is_dir else f"{args.output}/ ({done} image(s))"
        print(f"wrote {where} in {elapsed:.1f} s ({what}; first call includes compilation)")
    if failures:
        print(f"error: {len(failures)} of {len(contents)} image(s) failed; the others were written", file=sys.stderr)
        raise SystemExit(1)


def video_command(args) -> None:
    import flexsolver as fs
    from flexsolver import images
    from flexsolver import video as fv

    fv.check_video_writable(args.output)
    if args.lam < 0:
        raise ValueError(f"--lam must be >= 0, got {args.lam}")
    if args.max_side < 1:
        raise ValueError(f"--max-side must be >= 1, got {args.max_side}")
    frames = fv.read_frames(args.input, max_side=args.max_side, max_frames=args.frames)
    fps = fv.fps_of(args.input)
    x_s = images.load_image(args.style, max_side=args.style_size or args.max_side)
    solver, what = load_solver(args.checkpoint, args.random)
    grams = fs.style_grams(fs.load_vgg19(), x_s)
    with stopwatch() as clock, fv.VideoWriter(args.output, fps=fps) as writer:
        writer.write_all(fv.stylize_clip(solver, frames, grams,
                                         temporal=not args.no_temporal, photo=args.photo, lam=args.lam))
    elapsed = clock.seconds
    h, w = frames[0].shape[:2]
    print(f"wrote {args.output}: {writer.count} frames {w}×{h} in {elapsed:.1f} s "
          f"({writer.count / elapsed:.2f} frames/s incl. compilation and flow; {what}; "
          f"{'per-frame' if args.no_temporal else f'temporal λ={args.lam}'}{', photo' if args.photo else ''})")


def superres_command(args) -> None:
    import flexsolver as fs
    from flexsolver import images
    from flexsolver.superres import FACTOR, superresolve

    images.check_writable(args.output)
    if args.lam < 0:
        raise ValueError(f"--lam must be >= 0, got {args.lam}")
    x_low = images.load_image(args.input)
    h, w = x_low.shape[:2]
    cap = memory_max_side((FACTOR * h, FACTOR * w), photo=False) // FACTOR
    if max(h, w) > cap:
        x_low = images.resize_max_side(x_low, cap)
        warn(f"{args.input}: {w}×{h} downscaled to {x_low.shape[1]}×{x_low.shape[0]} so that the ×{FACTOR} "
             "output fits in the available memory")
    guide = None if args.guide is None else images.load_image(args.guide, max_side=args.guide_size)
    solver, what = load_solver(args.checkpoint, args.random)
    with stopwatch() as clock:
        out = superresolve(solver, fs.load_vgg19(), x_low, guide, lam=args.lam)
        images.save_image(args.output, out)
    print(f"wrote {args.output}: {out.shape[1]}×{out.shape[0]} (×{FACTOR}, {'guided' if guide is not None else 'unguided'}) "
          f"in {clock.seconds:.1f} s ({what})")


def app_command(args) -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError("the page needs Gradio: pip install 'flexsolver[app]'") from None
    from flexsolver.app import Studio, launch

    if args.max_side < 16:
        raise ValueError(f"--max-side must be >= 16, got {args.max_side}")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    studio = Studio.from_checkpoint(args.checkpoint, working_side=args.max_side)
    print(f"flexsolver app on http://{args.host}:{args.port} ({studio.description}); Ctrl-C stops it")
    try:
        launch(studio, host=args.host, port=args.port)
    except OSError as e:  # the port is taken, or the address is not this machine's
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {e}") from None


def build_parser() -> argparse.ArgumentParser:
    from flexsolver import __version__

    parser = argparse.ArgumentParser(prog="flexsolver", description="Fast, flexible neural style transfer "
                                     "(Puy & Pérez, CVPR 2019).")
    parser.add_argument("--version", action="version", version=f"flexsolver {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    checkpoint_help = "exported solver folder or training workdir (default: the shipped model)"

    p = sub.add_parser("stylize", help="stylise an image (or a folder of images)",
                       description="Stylise CONTENT (an image or a folder of images) with one or more STYLE images.")
    p.add_argument("content", nargs="?", help="content image, or a folder of them")
    p.add_argument("styles", nargs="*", metavar="STYLE", help="style image(s)")
    p.add_argument("-o", "--output", help="output image (.png/.jpg/.webp), or a folder when CONTENT is one")
    p.add_argument("--example", action="store_true", help="use the shipped example content and style")
    p.add_argument("--weights", type=float, nargs="+", help="mixing weights, one per style, summing to 1")
    p.add_argument("--mask", dest="masks", action="append", metavar="FILE",
                   help="one per style, in order: where that style goes (white) — same size as the content")
    p.add_argument("--scales", help="comma-separated style layers to use (default all: conv1_1,conv2_1,conv3_1,conv4_1,conv5_1)")
    p.add_argument("--intensity", type=float, default=1.0, help="global style strength (default 1)")
    p.add_argument("--photo", action="store_true", help="photorealistic transfer (matting-Laplacian prox)")
    p.add_argument("--lam", type=float, default=None, help="λ of the photo prox (default 50)")
    p.add_argument("--preserve-color", action="store_true", help="luminance-only transfer: keep the content's colours")
    p.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                   help=f"downscale larger contents to this longest side, with a warning (default "
                        f"{DEFAULT_MAX_SIDE}; 0: full size, within the available memory)")
    p.add_argument("--style-size", type=int, default=None, help="style images' max side (default: --max-side)")
    p.add_argument("--format", default="png", choices=("png", "jpg", "webp"), help="output format for a folder")
    p.add_argument("--checkpoint", default=None, help=checkpoint_help)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary line")
    p.set_defaults(run=stylize_command)

    v = sub.add_parser("video", help="stylise a video with temporal consistency (online)")
    v.add_argument("input", help="video file (mp4, avi, …)")
    v.add_argument("style", help="style image")
    v.add_argument("-o", "--output", required=True, help="output .mp4")
    v.add_argument("--max-side", type=int, default=640, help="downscale frames to this longest side (px)")
    v.add_argument("--style-size", type=int, default=None, help="style image max side (default: --max-side)")
    v.add_argument("--frames", type=int, default=None, help="only the first N frames")
    v.add_argument("--photo", action="store_true", help="photorealistic: compose with the matting prox")
    v.add_argument("--no-temporal", action="store_true", help="per-frame stylisation (no temporal prox)")
    v.add_argument("--lam", type=float, default=0.37, help="λ_R of the temporal prox")
    v.add_argument("--checkpoint", default=None, help=checkpoint_help)
    v.add_argument("--random", action="store_true", help=argparse.SUPPRESS)
    v.set_defaults(run=video_command)

    s = sub.add_parser("superres", help="×3 texture super-resolution, optionally guided by a texture")
    s.add_argument("input", help="low-resolution image")
    s.add_argument("--guide", default=None, help="a high-resolution texture of the same kind (the user's X_ref)")
    s.add_argument("--guide-size", type=int, default=512, help="guide's max side (default 512)")
    s.add_argument("-o", "--output", required=True, help="output image")
    s.add_argument("--lam", type=float, default=50.0, help="λ_R of the data term (default 50)")
    s.add_argument("--checkpoint", default=None, help=checkpoint_help)
    s.add_argument("--random", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(run=superres_command)

    a = sub.add_parser("app", help="a local web page where the run-time controls are sliders (needs the app extra)",
                       description="Serve an interactive page (Gradio): sliders per style scale, intensity, mixing, "
                                   "a region mask, photorealism and colour preservation.")
    a.add_argument("--checkpoint", default=None, help=checkpoint_help)
    a.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    a.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    a.add_argument("--max-side", type=int, default=512,
                   help="working size: contents are downscaled to this longest side on the page (default 512)")
    a.set_defaults(run=app_command)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    with cli_errors():
        args.run(args)


if __name__ == "__main__":
    main()
