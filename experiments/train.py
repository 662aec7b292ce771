"""Train the flexible solver (SPEC §3): ``python -m experiments.train --n 4 --l 64``.

Defaults are the paper's (MS-COCO 2014 through tensorflow-datasets, 320 px, batch 1, Adam 2e-5,
50 epochs). A CPU-sized run on the shipped photos::

    python -m experiments.train --n 4 --l 32 --size 64 --batch 4 --lr 1e-4 \\
        --data folder:../shared/data/train --workdir runs/cpu64 --steps 20000

The run resumes automatically from the latest checkpoint in ``--workdir`` (same data order and
randomness, so an interrupted run ends bit-identical to an uninterrupted one). What it writes:
``config.json``, ``metrics.jsonl`` (training and validation), ``samples/step_*.png`` (content |
style | X(1) … X(N)) and ``checkpoints/<step>/{params,opt_state,config}`` (orbax).

Several hosts: start the same command on each with ``--distributed`` (and, outside a managed
cluster, ``--coordinator HOST:PORT --num-processes P --process-id I``); each process reads its own
shard of the data and the gradients are averaged over all devices of all hosts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from flexsolver import images
from flexsolver.checkpoint import CHECKPOINTS, CheckpointError, load_checkpoint
from flexsolver.data import DataError, TrainBatches, fixed_pairs
from flexsolver.network import NONLINEARITIES, init_params, param_count
from flexsolver.training import (
    SCHEDULES,
    TrainConfig,
    evaluate,
    make_optimizer,
    make_train_step,
    replicate,
    shard,
    unreplicate,
)
from flexsolver.vgg import WeightsError, load_vgg19

ARCHITECTURE = ("n", "l", "nonlinearity")


def parse_args(argv=None) -> tuple[TrainConfig, argparse.Namespace]:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        description="Train the flexible style-transfer solver.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kwargs = {"type": type(getattr(defaults, field.name)), "default": getattr(defaults, field.name)}
        if field.name == "nonlinearity":
            kwargs["choices"] = NONLINEARITIES
        if field.name == "schedule":
            kwargs["choices"] = SCHEDULES
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--epochs", type=float, default=None, help="overrides --steps: epochs of the data at --batch")
    parser.add_argument("--workdir", default="runs/default", help="checkpoints, metrics and samples go here")
    parser.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize() (multi-host)")
    parser.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (multi-host, unmanaged)")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="stop (saving a checkpoint) after this much wall time; 0: run to --steps")
    args = parser.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**values), args


def validate(config: TrainConfig) -> None:
    if config.n < 1 or config.l < 1:
        raise ValueError(f"--n and --l must be >= 1 (got {config.n}, {config.l})")
    if config.size < 16 or config.size % 16:
        raise ValueError(f"--size must be a positive multiple of 16 (got {config.size})")
    if config.val_size and (config.val_size < 16 or config.val_size % 16):
        raise ValueError(f"--val-size must be 0 or a positive multiple of 16 (got {config.val_size})")
    if config.batch < 1 or config.steps < 1 or config.lr <= 0:
        raise ValueError("--batch, --steps and --lr must be positive")
    if not 0.0 <= config.crop_min <= 1.0:
        raise ValueError(f"--crop-min must be in [0, 1] (0: centre squares), got {config.crop_min}")
    if config.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {config.warmup}")
    devices = jax.device_count()
    if config.batch % devices:
        raise ValueError(f"--batch {config.batch} is not a multiple of the {devices} devices")


class Run:
    """The state of one training run: what is on disk in the workdir and what is on devices."""

    def __init__(self, config: TrainConfig, workdir: Path, progress: bool):
        self.config = config
        self.workdir = workdir
        self.progress = progress
        self.is_main = jax.process_index() == 0
        self.vgg = load_vgg19()
        schedule = (config.schedule, config.warmup, config.steps)
        self.optimizer = make_optimizer(config.lr, config.clip_grad_norm, *schedule)
        self.step_fn = make_train_step(config.lr, config.clip_grad_norm, config.nonlinearity, None, *schedule)
        self.manager = ocp.CheckpointManager(
            (workdir / CHECKPOINTS).absolute(),
            item_names=("params", "opt_state", "config"),
            options=ocp.CheckpointManagerOptions(max_to_keep=config.keep, enable_async_checkpointing=True),
        )
        self.config_json = dataclasses.asdict(config)

    def initial_state(self):
        """(params, opt_state, step): resumed from the workdir, else fresh (or --init-from)."""
        config = self.config
        latest = self.manager.latest_step()
        abstract = jax.eval_shape(lambda: init_params(jax.random.PRNGKey(0), config.n, config.l))
        if latest is not None:
            stored = self.manager.restore(latest, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
            for key in ARCHITECTURE:
                if stored[key] != getattr(config, key):
                    raise ValueError(
                        f"{self.workdir} holds a run with --{key} {stored[key]}, not {getattr(config, key)}; "
                        "use another --workdir"
                    )
            abstract_opt = jax.eval_shape(self.optimizer.init, abstract)
            restored = self.manager.restore(
                latest,
                args=ocp.args.Composite(
                    params=ocp.args.StandardRestore(abstract),
                    opt_state=ocp.args.StandardRestore(abstract_opt),
                ),
            )
            return restored["params"], restored["opt_state"], latest
        if config.init_from:
            params, stored = load_checkpoint(config.init_from)
            if (stored["n"], stored["l"]) != (config.n, config.l):
                raise ValueError(f"--init-from has n={stored['n']}, l={stored['l']}, not n={config.n}, l={config.l}")
        else:
            params = init_params(jax.random.PRNGKey(config.seed), config.n, config.l)
        return params, self.optimizer.init(params), 0

    def save(self, step: int, params, opt_state) -> None:
        self.manager.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(unreplicate(params)),
                opt_state=ocp.args.StandardSave(unreplicate(opt_state)),
                config=ocp.args.JsonSave(self.config_json),
            ),
        )

    def log(self, record: dict) -> None:
        if self.is_main:
            with open(self.workdir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def validation(self, step: int, params, pairs) -> float:
        x_c, x_s = pairs
        losses, outputs = evaluate(unreplicate(params), self.vgg, x_c, x_s, self.config.nonlinearity)
        losses = np.asarray(losses)
        self.log({
            "step": step,
            "val_ltv": float(losses[-1].mean()),
            "val_ltv_std": float(losses[-1].std()),
            "val_ltv_per_iteration": [float(v) for v in losses.mean(axis=1)],
        })
        if self.is_main:
            rows = [[x_c[i], x_s[i], *[np.asarray(o[i]) for o in outputs]] for i in range(min(4, len(x_c)))]
            (self.workdir / "samples").mkdir(exist_ok=True)
            images.save_image(self.workdir / "samples" / f"step_{step:07d}.png", images.image_grid(rows))
        return float(losses[-1].mean())


def train(config: TrainConfig, workdir: Path, progress: bool = True, minutes: float = 0.0) -> dict:
    """Runs (or resumes) training until ``config.steps``, or for ``minutes`` of wall time when
    ``minutes > 0`` (then it saves and returns, as on SIGTERM); returns the last metrics."""
    validate(config)
    workdir.mkdir(parents=True, exist_ok=True)
    run = Run(config, workdir, progress)
    params, opt_state, start = run.initial_state()
    if run.is_main:
        (workdir / "config.json").write_text(json.dumps(run.config_json, indent=2) + "\n")
    val_pairs = None
    if config.eval_every:
        val_pairs = fixed_pairs(
            config.val_data or config.data, config.val_size or config.size, config.eval_pairs, config.val_seed,
            style_source="" if config.val_data else config.style_data,
        )
    devices = jax.local_devices()
    params, opt_state = replicate(params, devices), replicate(opt_state, devices)
    batches = TrainBatches(
        config.data, config.size, config.batch // jax.process_count(), config.seed, start_step=start,
        shard_index=jax.process_index(), shard_count=jax.process_count(),
        style_source=config.style_data, crop_min=config.crop_min,
    )
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    previous = signal.signal(signal.SIGTERM, on_signal)
    last: dict = {}
    step = start
    bar = tqdm(total=config.steps, initial=start, disable=not (progress and run.is_main), unit="step", dynamic_ncols=True)
    t0, s0 = time.perf_counter(), start
    try:
        with batches:
            deadline = time.monotonic() + 60 * minutes if minutes > 0 else float("inf")
            while step < config.steps and stop["signal"] is None and time.monotonic() < deadline:
                batch = next(batches)
                params, opt_state, metrics = run.step_fn(params, opt_state, run.vgg, shard(batch, len(devices)))
                step += 1
                bar.update(1)
                if step % config.log_every == 0 or step == config.steps:
                    metrics = jax.device_get(unreplicate(metrics))
                    rate = (step - s0) / (time.perf_counter() - t0)
                    last = {
                        "step": step,
                        "loss": float(metrics["loss"]),
                        "ltv_per_iteration": [float(v) for v in metrics["ltv_per_iteration"]],
                        "grad_norm": float(metrics["grad_norm"]),
                        "steps_per_s": rate,
                        "images_per_s": rate * config.batch,
                    }
                    if not np.isfinite(last["loss"]):
                        raise FloatingPointError(f"loss is {last['loss']} at step {step}; lower --lr or set --clip-grad-norm")
                    run.log(last)
                    bar.set_postfix(loss=f"{last['loss']:.4f}", refresh=False)
                if step % config.save_every == 0 or step == config.steps:
                    run.save(step, params, opt_state)
                if config.eval_every and (step % config.eval_every == 0 or step == config.steps):
                    last["val_ltv"] = run.validation(step, params, val_pairs)
                    bar.write(f"step {step}: validation LTV {last['val_ltv']:.4f}")
    except KeyboardInterrupt:
        stop["signal"] = signal.SIGINT
    finally:
        bar.close()
        if step > start and run.manager.latest_step() != step:
            run.save(step, params, opt_state)  # never lose work, whatever stopped us
        run.manager.wait_until_finished()
        run.manager.close()
        signal.signal(signal.SIGTERM, previous)
    if stop["signal"] is not None:
        print(f"stopped at step {step}; checkpoint saved in {workdir}; rerun the same command to resume", file=sys.stderr)
    return last


def main(argv=None) -> None:
    config, args = parse_args(argv)
    if args.epochs is not None:
        try:
            with TrainBatches(config.data, config.size, config.batch, config.seed, prefetch=0) as b:
                num = b.num_images
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        config = dataclasses.replace(config, steps=max(1, int(args.epochs * num / config.batch)))
    if args.distributed:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    print(json.dumps(dataclasses.asdict(config), indent=2))
    print(f"devices: {jax.device_count()} ({jax.devices()[0].platform}), processes: {jax.process_count()}, "
          f"parameters: {param_count(config.n, config.l):,}")
    try:
        last = train(config, Path(args.workdir), progress=not args.no_progress, minutes=args.minutes)
    except (DataError, WeightsError, CheckpointError, ValueError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if last:
        print(json.dumps(last))


if __name__ == "__main__":
    main()
