"""Training configurations as code: the model's part nested in the run's, validated, with presets.

``TrainConfig(model=ModelConfig(n, l, nonlinearity), size=…, lr=…, …)``; every field carries its
help text (``field.metadata["help"]``), which ``experiments/train.py`` turns into flags. A config
is checked when it is made (``ValueError`` with one line naming the flag).

On disk (a run's ``config.json`` and the ``config`` item of every checkpoint) a config is one flat
JSON object, the model's fields beside the others, as it always was: :func:`to_json` and
:func:`from_json` convert, so older runs, exported solvers and snapshots keep loading.

:data:`PRESETS` names the paper's run and each stage of the shipped model's recipe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any

from flexsolver.network import NONLINEARITIES

SCHEDULES = ("constant", "cosine")
LOSS_ITERATES = ("all", "last")
TRAIN_PHOTOS = "folder:../shared/data/train"
TRAIN_ART = "folder:../shared/data/styles"


def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What the parameters are: needed to rebuild, run or resume them."""

    n: int = _help("unrolled iterations N", 4)
    l: int = _help("width L (forward maps have L, 2L, 4L, 8L, 8L channels)", 64)
    nonlinearity: str = _help("gate of the backward maps: the paper's Heaviside, or ReLU (the ablation)", "heaviside")

    def __post_init__(self):
        if self.n < 1 or self.l < 1:
            raise ValueError(f"--n and --l must be >= 1 (got {self.n}, {self.l})")
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(f"--nonlinearity must be one of {NONLINEARITIES}, got {self.nonlinearity!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; the defaults are the paper's (SPEC §3)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    size: int = _help("training crops (px), a multiple of 16", 320)
    batch: int = _help("global batch (content/style pairs per step), a multiple of the devices", 1)
    steps: int = _help("last step (50 epochs of MS-COCO 2014 train at batch 1 by default)", 4_139_150)
    lr: float = _help("Adam's step size, or the peak of the cosine schedule", 2e-5)
    schedule: str = _help("'constant' (the paper's) or 'cosine': linear warmup, cosine decay to lr/100 at --steps", "constant")
    warmup: int = _help("linear-warmup steps of the cosine schedule", 0)
    clip_grad_norm: float = _help("clip the global gradient norm to this (0: no clipping, the paper's)", 0.0)
    pair_loss_cap: float = _help(
        "weigh each pair's loss by min(1, cap / LTV of its content), so pairs whose content scores above "
        "cap count by their relative improvement (0: all weigh 1, the paper's)", 0.0)
    loss_iterates: str = _help("score 'all' iterates X(1)…X(N) (the paper's) or only the 'last', X(N)", "all")
    ema_decay: float = _help(
        "also keep an exponential moving average of the parameters with this decay; validation and the "
        "exported best/ then consider it too (0: none, the paper's)", 0.0)
    data: str = _help("contents: folder:PATH (several joined with ',') or tfds:NAME", "tfds:coco/2014")
    style_data: str = _help("styles, as --data; empty: from --data (the paper's)", "")
    crop_min: float = _help("0: centre squares (the paper's); else random crops of [crop_min, 1] × the short side, and flips", 0.0)
    val_data: str = _help("validation pairs' source; empty: contents from --data, styles from --style-data", "")
    seed: int = _help("initial parameters and the order of the training pairs", 0)
    val_seed: int = _help("which fixed validation pairs (apart from --seed, so runs of any seed compare)", 0)
    save_every: int = _help("checkpoint every this many steps", 1000)
    keep: int = _help("checkpoints kept", 3)
    eval_every: int = _help("validate every this many steps (0: never)", 1000)
    eval_pairs: int = _help("fixed validation pairs", 8)
    val_size: int = _help("validation crops (px); 0: --size", 0)
    log_every: int = _help("log training metrics every this many steps", 10)
    init_from: str = _help("a checkpoint whose parameters start this run (fresh optimiser state)", "")

    def __post_init__(self):
        if not isinstance(self.model, ModelConfig):
            raise TypeError(f"model must be a ModelConfig, got {type(self.model).__name__}")
        if self.size < 16 or self.size % 16:
            raise ValueError(f"--size must be a positive multiple of 16 (got {self.size})")
        if self.val_size and (self.val_size < 16 or self.val_size % 16):
            raise ValueError(f"--val-size must be 0 or a positive multiple of 16 (got {self.val_size})")
        if self.batch < 1 or self.steps < 1 or self.lr <= 0:
            raise ValueError("--batch, --steps and --lr must be positive")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.warmup < 0 or self.clip_grad_norm < 0 or self.pair_loss_cap < 0:
            raise ValueError("--warmup, --clip-grad-norm and --pair-loss-cap must be >= 0")
        if self.loss_iterates not in LOSS_ITERATES:
            raise ValueError(f"--loss-iterates must be one of {LOSS_ITERATES}, got {self.loss_iterates!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay must be in [0, 1) (0: none), got {self.ema_decay}")
        if not 0.0 <= self.crop_min <= 1.0:
            raise ValueError(f"--crop-min must be in [0, 1] (0: centre squares), got {self.crop_min}")
        if self.save_every < 1 or self.keep < 1 or self.log_every < 1 or self.eval_every < 0 or self.eval_pairs < 1:
            raise ValueError("--save-every, --keep, --log-every, --eval-pairs must be >= 1 and --eval-every >= 0")


def to_json(config: TrainConfig) -> dict:
    """The flat JSON object stored with a run: the model's fields beside the others."""
    flat = dataclasses.asdict(config)
    return {**flat.pop("model"), **flat}


def from_json(stored: dict) -> TrainConfig:
    """A config from :func:`to_json`'s form (older runs' ``config.json`` too); unknown keys, such
    as an exported solver's ``params_dtype``, are ignored."""
    model_keys = {f.name for f in dataclasses.fields(ModelConfig)}
    run_keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    model = ModelConfig(**{k: v for k, v in stored.items() if k in model_keys})
    return TrainConfig(model=model, **{k: v for k, v in stored.items() if k in run_keys})


def _cpu(size: int, batch: int, lr: float, steps: int, **more) -> TrainConfig:
    return TrainConfig(model=ModelConfig(n=4, l=32), size=size, batch=batch, lr=lr, steps=steps,
                       data=TRAIN_PHOTOS, **more)


# The paper's run, and the stages of the shipped models: each CPU stage starts from the previous
# one (--init-from) with a fresh Adam state; `steps` is where the shipped stage stopped.
PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(),
    "cpu64": _cpu(64, 4, 1e-4, 860),
    "cpu128": _cpu(128, 4, 5e-5, 110, clip_grad_norm=10.0),
    "cpu256": _cpu(256, 1, 5e-5, 200, clip_grad_norm=10.0),
    "mix128": _cpu(128, 4, 5e-5, 800, clip_grad_norm=10.0, schedule="cosine", warmup=20, crop_min=0.5,
                   style_data=f"{TRAIN_PHOTOS},{TRAIN_ART}", eval_every=100, eval_pairs=16, val_size=256,
                   save_every=100, keep=10),
    # Session 5: from mix128 at a constant 1e-5 (the LR probe's best) at 128 px, then, from that
    # run's best step (100), at 256 px (the size of validation and evaluation), batch 2.
    "mix128b": _cpu(128, 4, 1e-5, 100, clip_grad_norm=10.0, crop_min=0.5, style_data=f"{TRAIN_PHOTOS},{TRAIN_ART}",
                    eval_every=100, eval_pairs=16, val_size=256, save_every=100, keep=3),
    "mix256": _cpu(256, 2, 1e-5, 50, clip_grad_norm=10.0, crop_min=0.75, style_data=f"{TRAIN_PHOTOS},{TRAIN_ART}",
                   eval_every=50, eval_pairs=16, val_size=256, save_every=50, keep=2),
    # Session 6: mix256 from the shipped mix256, with the cause of the gradient spikes weighed down
    # (pairs whose content scores above 3 count by their relative improvement) and a moving
    # average of the parameters against the noise of batch-2 steps.
    "mix256avg": _cpu(256, 2, 1e-5, 1000, clip_grad_norm=10.0, crop_min=0.75, style_data=f"{TRAIN_PHOTOS},{TRAIN_ART}",
                      pair_loss_cap=3.0, ema_decay=0.98, eval_every=50, eval_pairs=16, val_size=256, save_every=50,
                      keep=2),
    # ... and scoring the output X(N) alone, a VGG pass per pair instead of N (twice the steps an hour).
    "mix256last": _cpu(256, 2, 1e-5, 1000, clip_grad_norm=10.0, crop_min=0.75, style_data=f"{TRAIN_PHOTOS},{TRAIN_ART}",
                       pair_loss_cap=3.0, ema_decay=0.98, loss_iterates="last", eval_every=50, eval_pairs=16,
                       val_size=256, save_every=50, keep=2),
    # Session 7: annealed (warmup, cosine to lr/100) at batch 4, the cap above every evaluation
    # content (12), 32 validation pairs; from mix256last's best. Validation −7.8%, 144 pairs +0.5%.
    "mix256cos": _cpu(256, 4, 1e-5, 420, clip_grad_norm=10.0, crop_min=0.75, style_data=f"{TRAIN_PHOTOS},{TRAIN_ART}",
                      pair_loss_cap=12.0, schedule="cosine", warmup=10, loss_iterates="last", eval_every=50,
                      eval_pairs=32, val_size=256, save_every=50, keep=2),
}
