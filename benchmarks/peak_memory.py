"""Peak host memory of one stylisation, by image size: what ``flexsolver stylize`` needs.

    python benchmarks/peak_memory.py                      # 512², 1024², 2048², with and without --photo
    python benchmarks/peak_memory.py --sizes 1024 --l 32

Each measurement runs in a fresh subprocess (so peaks do not mix) that loads VGG-19, builds an
``N=4`` solver of width ``--l`` with random parameters (memory does not depend on the values),
and calls :func:`flexsolver.stylize` once on a random ``S×S`` content (compilation
included, as a user's first call). The peak is the process's maximum resident set size
(``ru_maxrss``), which includes the Python interpreter, JAX and the weights: the table also shows
the baseline process (everything loaded, no solve) and the bytes per pixel above it, which is
what :mod:`flexsolver.cli` uses to keep large inputs within the available memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def measure(size: int, l: int, photo: bool) -> dict:
    import resource

    import jax
    import numpy as np

    import flexsolver as fs
    from flexsolver.transfer import stylize

    vgg = fs.load_vgg19()
    params = fs.init_params(jax.random.PRNGKey(0), n=4, l=l)
    rng = np.random.default_rng(0)
    x_s = rng.random((256, 256, 3), np.float32)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if size > 0:
        x_c = rng.random((size, size, 3), np.float32)
        stylize(params, vgg, x_c, [x_s], photo_lam=50.0 if photo else None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"size": size, "photo": photo, "base": base, "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024,2048")
    parser.add_argument("--l", type=int, default=32)
    parser.add_argument("--no-photo", action="store_true", help="skip the matting-prox rows")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, photo = args.child.split(":")
        print(json.dumps(measure(int(size), args.l, photo == "1")))
        return
    rows = []
    for photo in (False,) if args.no_photo else (False, True):
        for size in [0] + [int(s) for s in args.sizes.split(",")]:
            if size == 0 and photo:
                continue
            out = subprocess.run([sys.executable, __file__, "--child", f"{size}:{int(photo)}", "--l", str(args.l)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                rows.append({"size": size, "photo": photo, "error": out.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
    base = next(r["peak"] for r in rows if r["size"] == 0)
    print(f"N=4 L={args.l}, first call (compilation included); baseline process {base / 2**30:.2f} GiB\n")
    print("| content | photo prox | peak RSS GiB | above baseline GiB | bytes/pixel above baseline |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r["size"] == 0:
            continue
        if "error" in r:
            print(f"| {r['size']}² | {'yes' if r['photo'] else 'no'} | failed: {r['error']} | | |")
            continue
        extra = r["peak"] - base
        print(f"| {r['size']}² | {'yes' if r['photo'] else 'no'} | {r['peak'] / 2**30:.2f} | "
              f"{extra / 2**30:.2f} | {extra / r['size'] ** 2:.0f} |")


if __name__ == "__main__":
    main()
