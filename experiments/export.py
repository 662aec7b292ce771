"""Export a training checkpoint as a compact, parameters-only solver folder.

    python -m experiments.export runs/cpu256 out/snapshot                  # latest step, bfloat16
    python -m experiments.export runs/cpu256/checkpoints/200 flexsolver/models/x --dtype float32

The folder holds ``params`` and ``config`` (orbax); ``load_checkpoint``, ``--checkpoint`` and
``experiments.train --init-from`` read it. A run's ``metrics.jsonl`` is copied beside them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from flexsolver.checkpoint import CheckpointError, export_params, load_checkpoint


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="training workdir (its latest step), one step folder, or an exported folder")
    parser.add_argument("dest", help="new folder to write")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    args = parser.parse_args(argv)
    try:
        params, config = load_checkpoint(args.source)
        config = {k: v for k, v in config.items() if k != "params_dtype"}
        dest = export_params(args.dest, params, config, args.dtype)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    source = Path(args.source)
    for candidate in (source / "metrics.jsonl", source.parent.parent / "metrics.jsonl"):
        if candidate.is_file():
            shutil.copy(candidate, dest / "metrics.jsonl")
            break
    print(f"wrote {dest} (n={config['n']}, l={config['l']}, {args.dtype})")


if __name__ == "__main__":
    main()
