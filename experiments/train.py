"""Train the flexible solver (SPEC §3): ``python -m experiments.train --n 4 --l 64``.

Starts from a preset (default ``paper``: MS-COCO 2014 through tensorflow-datasets, 320 px, batch 1,
Adam 2e-5, 50 epochs); every flag given overrides it. The shipped model's recipe, for instance::

    python -m experiments.train --preset mix256 --workdir runs/mix256b --init-from flexsolver/models/mix256 --steps 500

Rerunning the same command resumes from ``--workdir``. The loop is :func:`flexsolver.trainer.train`;
presets and every flag's meaning are in :mod:`flexsolver.config`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import jax

from flexsolver.checkpoint import CheckpointError
from flexsolver.config import PRESETS, ModelConfig, TrainConfig, to_json
from flexsolver.data import DataError, TrainBatches
from flexsolver.network import param_count
from flexsolver.trainer import train
from flexsolver.vgg import WeightsError

FIELDS = [("model", f) for f in dataclasses.fields(ModelConfig)] + [
    ("run", f) for f in dataclasses.fields(TrainConfig) if f.name != "model"
]


def parse_args(argv=None) -> tuple[TrainConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(description="Train the flexible style-transfer solver.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                        help="the configuration every other flag overrides (default: paper)")
    for _, f in FIELDS:
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None,
                            help=f"{f.metadata['help']} (paper: {f.default!r})")
    parser.add_argument("--epochs", type=float, default=None, help="overrides --steps: epochs of the data at --batch")
    parser.add_argument("--workdir", default="runs/default", help="checkpoints, metrics and samples go here")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop (saving) after this much wall time; 0: run to --steps")
    parser.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize() (multi-host)")
    parser.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (multi-host, unmanaged)")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    given = {part: {f.name: getattr(args, f.name) for p, f in FIELDS if p == part and getattr(args, f.name) is not None}
             for part in ("model", "run")}
    try:
        model = dataclasses.replace(preset.model, **given["model"])
        config = dataclasses.replace(preset, model=model, **given["run"])
    except ValueError as e:
        parser.error(str(e))
    return config, args


def main(argv=None) -> None:
    config, args = parse_args(argv)
    try:
        if args.epochs is not None:
            with TrainBatches(config.data, config.size, config.batch, config.seed, prefetch=0) as b:
                config = dataclasses.replace(config, steps=max(1, int(args.epochs * b.num_images / config.batch)))
        if args.distributed:
            jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
        print(json.dumps(to_json(config), indent=2))
        print(f"devices: {jax.device_count()} ({jax.devices()[0].platform}), processes: {jax.process_count()}, "
              f"parameters: {param_count(config.model.n, config.model.l):,}")
        last = train(config, Path(args.workdir), progress=not args.no_progress, minutes=args.minutes)
    except (DataError, WeightsError, CheckpointError, ValueError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if last:
        print(json.dumps(last))


if __name__ == "__main__":
    main()
