"""Small-scale ablation in the spirit of the paper's Fig. 3: iterations N and the backward-map gate.

    python -m experiments.ablation [--runs 1:heaviside,2:heaviside,4:heaviside,4:relu] [--seeds 0,1]
        [--steps 150] [--size 64] [--batch 4] [--l 16] [--lr 1e-4] [--eval-pairs 16]
        [--workdir runs/ablation] [-o out/ablation]

Each run is ``python -m experiments.train`` from scratch with the same budget (steps, batch,
resolution, learning rate, width ``L``) and only ``N`` or the gate changed, once per training
seed (initial parameters and order of the training pairs). Every run is validated at its last
step on the same fixed photo pairs (``--val-seed 0``, drawn from ``--data``; LTV with β = 1),
read back from its ``metrics.jsonl``. Runs already finished in ``--workdir`` are not redone, so
the script can be stopped and rerun. Writes ``OUT/ablation.md`` (per configuration: mean ± std
over the pairs of all seeds, each seed's mean, per-iteration means, wall time) and
``OUT/ablation.png`` (each configuration's first seed, last validation sample row, top to
bottom in table order).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from flexsolver import images
from flexsolver.timing import stopwatch

DEFAULT_DATA = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "train")


def parse_runs(text: str) -> list[tuple[int, str]]:
    runs = []
    for item in text.split(","):
        n, _, gate = item.strip().partition(":")
        if not n.isdigit() or int(n) < 1 or gate not in ("heaviside", "relu"):
            raise ValueError(f"bad run {item!r}: expected N:heaviside or N:relu, e.g. 4:relu")
        runs.append((int(n), gate))
    return runs


def final_validation(workdir: Path, steps: int) -> dict | None:
    """The validation record of the last step of a finished run (``None`` if not finished)."""
    path = workdir / "metrics.jsonl"
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    done = [r for r in records if "val_ltv" in r and r["step"] == steps]
    return done[-1] if done else None


def parse_seeds(text: str) -> list[int]:
    seeds = [item.strip() for item in text.split(",")]
    if not seeds or not all(s.isdigit() for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"bad --seeds {text!r}: expected distinct integers >= 0, e.g. 0,1")
    return [int(s) for s in seeds]


def pooled(records: list[dict]) -> tuple[float, float]:
    """Mean and std over the pairs of several runs validated on the same number of pairs, from
    each run's mean and (population) std: ``var = mean(std²) + var(means)``."""
    means = np.array([r["val_ltv"] for r in records])
    stds = np.array([r["val_ltv_std"] for r in records])
    return float(means.mean()), float(np.sqrt((stds**2).mean() + means.var()))


def run_dir(root: Path, n: int, gate: str, seed: int, args) -> Path:
    """The workdir of one run (its log and wall time sit beside it as ``.log`` and ``.seconds``)."""
    return root / f"n{n}_{gate}_l{args.l}_{args.size}px_{args.steps}steps_seed{seed}"


def train_run(n: int, gate: str, seed: int, args, workdir: Path) -> float:
    """Runs one training to the end (resuming if interrupted); returns its wall time in seconds."""
    command = [
        sys.executable, "-m", "experiments.train", "--n", str(n), "--l", str(args.l), "--nonlinearity", gate,
        "--seed", str(seed), "--val-seed", "0",
        "--size", str(args.size), "--batch", str(args.batch), "--steps", str(args.steps), "--lr", str(args.lr),
        "--clip-grad-norm", "10", "--data", f"folder:{args.data}", "--eval-every", str(args.steps),
        "--eval-pairs", str(args.eval_pairs), "--save-every", str(args.steps), "--keep", "1",
        "--workdir", str(workdir), "--no-progress",
    ]
    with stopwatch() as sw, open(workdir.with_suffix(".log"), "a") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    return sw.seconds


def table(rows: list[dict], args) -> str:
    lines = [
        f"Ablation: L={args.l}, {args.size} px, batch {args.batch}, {args.steps} steps, Adam {args.lr:g}, "
        f"validation LTV (β = 1) on {args.eval_pairs} fixed photo pairs; lower is better.",
        "",
        f"Mean ± std over the pairs of the {len(args.seed_list)} training seeds ({args.seeds}) together; "
        "then each seed's mean, the per-iteration means over seeds, and the wall time per run.",
        "",
        "| N | backward gate | val LTV mean ± std | per seed | per iteration (X(0) = content, …, X(N)) | wall time per run |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        mean, std = pooled(r["records"])
        seeds = ", ".join(f"{rec['val_ltv']:.3f}" for rec in r["records"])
        per_t = np.mean([rec["val_ltv_per_iteration"] for rec in r["records"]], axis=0)
        per = ", ".join(f"{v:.3f}" for v in per_t)
        lines.append(f"| {r['n']} | {r['gate']} | {mean:.3f} ± {std:.3f} | {seeds} | {per} | "
                     f"{np.mean(r['seconds']) / 60:.0f} min |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    from experiments.common import cli_errors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1:heaviside,2:heaviside,4:heaviside,4:relu")
    parser.add_argument("--seeds", default="0,1", help="training seeds, one run each per configuration")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--l", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--eval-pairs", type=int, default=16)
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder of training photos")
    parser.add_argument("--workdir", default="runs/ablation")
    parser.add_argument("-o", "--output", default="out/ablation")
    args = parser.parse_args(argv)
    with cli_errors():
        runs = parse_runs(args.runs)
        args.seed_list = parse_seeds(args.seeds)
        if min(args.steps, args.size, args.batch, args.l, args.eval_pairs) < 1:
            raise ValueError("--steps, --size, --batch, --l and --eval-pairs must be >= 1")
        if not Path(args.data).is_dir():
            raise FileNotFoundError(f"data folder {args.data} does not exist")
        root, out = Path(args.workdir), Path(args.output)
        root.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for n, gate in runs:
            row = {"n": n, "gate": gate, "records": [], "seconds": []}
            for seed in args.seed_list:
                workdir = run_dir(root, n, gate, seed, args)
                timing = workdir.with_suffix(".seconds")
                if final_validation(workdir, args.steps) is None:
                    print(f"training N={n} {gate} seed {seed} ...", flush=True)
                    seconds = train_run(n, gate, seed, args, workdir)
                    timing.write_text(f"{seconds:.1f}\n")
                record = final_validation(workdir, args.steps)
                if record is None:
                    raise ValueError(f"run {workdir} ended without its final validation (see {workdir}.log)")
                row["records"].append(record)
                row["seconds"].append(float(timing.read_text()) if timing.is_file() else float("nan"))
                print(f"N={n} {gate} seed {seed}: val LTV {record['val_ltv']:.4f} ± {record['val_ltv_std']:.4f}",
                      flush=True)
            rows.append(row)
        text = table(rows, args)
        (out / "ablation.md").write_text(text)
        # first validation pair of each configuration's first seed: content | style | X(1) … X(N) (one grid row)
        samples = [run_dir(root, r["n"], r["gate"], args.seed_list[0], args) / "samples" / f"step_{args.steps:07d}.png"
                   for r in rows]
        first_rows = [images.load_image(p)[: args.size + 8] for p in samples]
        images.save_image(out / "ablation.png", images.image_grid([[row] for row in first_rows], pad=0))
        print(text)
        print(f"wrote {out / 'ablation.md'} and {out / 'ablation.png'}")


if __name__ == "__main__":
    main()
