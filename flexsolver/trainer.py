"""The training loop: ``train(config, workdir)`` runs or resumes a run until its last step.

A run lives in a workdir: ``config.json``, ``metrics.jsonl`` (training and validation),
``samples/step_*.png`` (content | style | X(1) … X(N)), orbax checkpoints
``checkpoints/<step>/{params,opt_state,config}`` (the last ``keep``) and ``best/``: the solver of
the step with the lowest validation LTV so far (the parameters, or with ``--ema-decay`` their
moving average if it scores lower), exported compact (bfloat16, with that step's
``val_ltv`` in its config and the run's ``metrics.jsonl``), ready to commit as the snapshot to go
on from or to ship, even after its full checkpoint has been rotated away. Rerunning with the same workdir resumes from
the latest checkpoint with the same data order and randomness, so an interrupted run ends
bit-identical to an uninterrupted one. SIGTERM, Ctrl-C, an error or the wall-clock budget
(``minutes``) stop it after saving a checkpoint: no work is lost. The step itself is
:mod:`flexsolver.training`; the configuration :mod:`flexsolver.config`.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from flexsolver import images
from flexsolver.checkpoint import CHECKPOINTS, abstract_params, export_params, load_checkpoint
from flexsolver.config import TrainConfig, from_json, to_json
from flexsolver.data import TrainBatches, fixed_pairs
from flexsolver.network import init_params
from flexsolver.training import ema_params, evaluate, make_optimizer, make_train_step, replicate, shard, unreplicate
from flexsolver.vgg import load_vgg19

__all__ = ["BEST", "Run", "train"]

BEST = "best"  # the workdir's folder holding the best validated solver


class Run:
    """The state of one training run: what is on disk in the workdir and what is on devices."""

    def __init__(self, config: TrainConfig, workdir: Path, progress: bool):
        self.config = config
        self.workdir = workdir
        self.progress = progress
        self.is_main = jax.process_index() == 0
        self.vgg = load_vgg19()
        schedule = (config.schedule, config.warmup, config.steps)
        self.optimizer = make_optimizer(config.lr, config.clip_grad_norm, *schedule, config.ema_decay)
        self.step_fn = make_train_step(
            config.lr, config.clip_grad_norm, config.model.nonlinearity, None, *schedule,
            pair_loss_cap=config.pair_loss_cap, ema_decay=config.ema_decay, last_only=config.loss_iterates == "last",
        )
        self.manager = ocp.CheckpointManager(
            (workdir / CHECKPOINTS).absolute(),
            item_names=("params", "opt_state", "config"),
            options=ocp.CheckpointManagerOptions(max_to_keep=config.keep, enable_async_checkpointing=True),
        )
        self.config_json = to_json(config)

    def initial_state(self):
        """(params, opt_state, step): resumed from the workdir, else fresh (or --init-from)."""
        config = self.config
        latest = self.manager.latest_step()
        model = config.model
        abstract = abstract_params(model.n, model.l)
        if latest is not None:
            stored = self.manager.restore(latest, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
            stored_model = from_json(dict(stored)).model
            for key in ("n", "l", "nonlinearity"):
                if getattr(stored_model, key) != getattr(model, key):
                    raise ValueError(
                        f"{self.workdir} holds a run with --{key} {getattr(stored_model, key)}, not "
                        f"{getattr(model, key)}; use another --workdir"
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
            solver, _ = load_checkpoint(config.init_from)
            if (solver.n, solver.l, solver.nonlinearity) != (model.n, model.l, model.nonlinearity):
                raise ValueError(f"--init-from has n={solver.n}, l={solver.l}, --nonlinearity {solver.nonlinearity}, "
                                 f"not n={model.n}, l={model.l}, {model.nonlinearity}")
            params = solver.params
        else:
            params = init_params(jax.random.PRNGKey(config.seed), model.n, model.l).params
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

    def best_val_ltv(self) -> float:
        """The lowest validation LTV logged so far, of the parameters or of their average
        (``inf`` if none), so a resumed run goes on comparing against it."""
        path = self.workdir / "metrics.jsonl"
        if not path.is_file():
            return float("inf")
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        values = [r[k] for r in records for k in ("val_ltv", "val_ltv_ema") if k in r]
        return min(values, default=float("inf"))

    def export_best(self, step: int, params, val_ltv: float, averaged: bool = False) -> None:
        """Replaces ``best/`` with this step's solver (bfloat16; ``averaged``: the moving average of
        the parameters rather than the parameters): written aside, then swapped in."""
        if not self.is_main:
            return
        fresh, best = self.workdir / f"{BEST}.new", self.workdir / BEST
        shutil.rmtree(fresh, ignore_errors=True)
        config = {**self.config_json, "step": step, "val_ltv": val_ltv, "averaged": averaged}  # n, l, gate included
        export_params(fresh, jax.device_get(params), config, "bfloat16")
        shutil.copy(self.workdir / "metrics.jsonl", fresh / "metrics.jsonl")
        shutil.rmtree(best, ignore_errors=True)
        fresh.rename(best)

    def validation(self, step: int, params, pairs, averaged=None) -> dict:
        """Validates ``params`` and logs it; with ``averaged`` (the moving average of the
        parameters) validates that too, as ``val_ltv_ema``. Returns the logged record."""
        x_c, x_s = pairs
        losses, outputs = evaluate(params, self.vgg, x_c, x_s, self.config.model.nonlinearity)
        losses = np.asarray(losses)
        record = {
            "step": step,
            "val_ltv": float(losses[-1].mean()),
            "val_ltv_std": float(losses[-1].std()),
            "val_ltv_per_iteration": [float(v) for v in losses.mean(axis=1)],
        }
        if averaged is not None:
            ema_losses = np.asarray(evaluate(averaged, self.vgg, x_c, x_s, self.config.model.nonlinearity)[0])
            record["val_ltv_ema"] = float(ema_losses[-1].mean())
            record["val_ltv_ema_per_iteration"] = [float(v) for v in ema_losses.mean(axis=1)]
        self.log(record)
        if self.is_main:
            rows = [[x_c[i], x_s[i], *[np.asarray(o[i]) for o in outputs]] for i in range(min(4, len(x_c)))]
            (self.workdir / "samples").mkdir(exist_ok=True)
            images.save_image(self.workdir / "samples" / f"step_{step:07d}.png", images.image_grid(rows))
        return record


def train(config: TrainConfig, workdir: Path, progress: bool = True, minutes: float = 0.0) -> dict:
    """Runs (or resumes) training until ``config.steps``, or for ``minutes`` of wall time when
    ``minutes > 0`` (then it saves and returns, as on SIGTERM); returns the last metrics."""
    devices = jax.device_count()
    if config.batch % devices:
        raise ValueError(f"--batch {config.batch} is not a multiple of the {devices} devices")
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
    best = run.best_val_ltv()
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
                    current = unreplicate(params)
                    averaged = unreplicate(ema_params(opt_state)) if config.ema_decay else None  # not Adam's moments
                    record = run.validation(step, current, val_pairs, averaged)
                    last["val_ltv"] = record["val_ltv"]
                    candidates = [(last["val_ltv"], current, False)]
                    message = f"step {step}: validation LTV {last['val_ltv']:.4f}"
                    if averaged is not None:
                        last["val_ltv_ema"] = record["val_ltv_ema"]
                        candidates.append((last["val_ltv_ema"], averaged, True))
                        message += f", of the averaged parameters {last['val_ltv_ema']:.4f}"
                    bar.write(message)
                    value, chosen, is_average = min(candidates, key=lambda c: c[0])
                    if value < best:
                        best = value
                        run.export_best(step, chosen, best, is_average)
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
