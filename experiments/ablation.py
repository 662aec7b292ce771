"""Small-scale ablation in the spirit of the paper's Fig. 3: iterations N and the backward-map gate.

    python -m experiments.ablation [--runs 1:heaviside,2:heaviside,4:heaviside,4:relu] [--steps 150]
        [--size 64] [--batch 4] [--l 16] [--lr 1e-4] [--eval-pairs 16] [--workdir runs/ablation]
        [-o out/ablation]

Each run is ``python -m experiments.train`` from scratch with the same budget (steps, batch,
resolution, learning rate, width ``L``, seed, data order) and only ``N`` or the gate changed;
its validation LTV (β = 1, the same fixed photo pairs for every run, drawn from ``--data``) at
the last step is read back from ``metrics.jsonl``. Runs already finished in ``--workdir`` are
not redone, so the script can be stopped and rerun. Writes ``OUT/ablation.md`` (mean ± std
validation LTV per run, the contents' own LTV, per-iteration means, wall time) and
``OUT/ablation.png`` (each run's last validation sample row, top to bottom in table order).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from flexsolver import images

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


def train_run(n: int, gate: str, args, workdir: Path) -> float:
    """Runs one training to the end (resuming if interrupted); returns its wall time in seconds."""
    command = [
        sys.executable, "-m", "experiments.train", "--n", str(n), "--l", str(args.l), "--nonlinearity", gate,
        "--size", str(args.size), "--batch", str(args.batch), "--steps", str(args.steps), "--lr", str(args.lr),
        "--clip-grad-norm", "10", "--data", f"folder:{args.data}", "--eval-every", str(args.steps),
        "--eval-pairs", str(args.eval_pairs), "--save-every", str(args.steps), "--keep", "1",
        "--workdir", str(workdir), "--no-progress",
    ]
    start = time.perf_counter()
    with open(workdir.with_suffix(".log"), "a") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def table(rows: list[dict], args) -> str:
    lines = [
        f"Ablation: L={args.l}, {args.size} px, batch {args.batch}, {args.steps} steps, Adam {args.lr:g}, "
        f"validation LTV (β = 1) on {args.eval_pairs} fixed photo pairs; lower is better.",
        "",
        "| N | backward gate | val LTV mean ± std | per iteration (X(0) = content, …, X(N)) | wall time |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        per = ", ".join(f"{v:.3f}" for v in r["val_ltv_per_iteration"])
        lines.append(f"| {r['n']} | {r['gate']} | {r['val_ltv']:.3f} ± {r['val_ltv_std']:.3f} | {per} | "
                     f"{r['seconds'] / 60:.0f} min |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    from experiments.common import cli_errors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1:heaviside,2:heaviside,4:heaviside,4:relu")
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
        if min(args.steps, args.size, args.batch, args.l, args.eval_pairs) < 1:
            raise ValueError("--steps, --size, --batch, --l and --eval-pairs must be >= 1")
        if not Path(args.data).is_dir():
            raise FileNotFoundError(f"data folder {args.data} does not exist")
        root, out = Path(args.workdir), Path(args.output)
        root.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for n, gate in runs:
            workdir = root / f"n{n}_{gate}_l{args.l}_{args.size}px_{args.steps}steps"
            timing = workdir.with_suffix(".seconds")
            if final_validation(workdir, args.steps) is None:
                print(f"training N={n} {gate} ...", flush=True)
                seconds = train_run(n, gate, args, workdir)
                timing.write_text(f"{seconds:.1f}\n")
            record = final_validation(workdir, args.steps)
            if record is None:
                raise ValueError(f"run {workdir} ended without its final validation (see {workdir}.log)")
            seconds = float(timing.read_text()) if timing.is_file() else float("nan")
            rows.append({"n": n, "gate": gate, "seconds": seconds, "workdir": workdir, **record})
            print(f"N={n} {gate}: val LTV {record['val_ltv']:.4f} ± {record['val_ltv_std']:.4f}", flush=True)
        text = table(rows, args)
        (out / "ablation.md").write_text(text)
        # first validation pair of each run: content | style | X(1) … X(N) (one grid row)
        first_rows = [images.load_image(r["workdir"] / "samples" / f"step_{args.steps:07d}.png")[: args.size + 8]
                      for r in rows]
        images.save_image(out / "ablation.png", images.image_grid([[row] for row in first_rows], pad=0))
        print(text)
        print(f"wrote {out / 'ablation.md'} and {out / 'ablation.png'}")


if __name__ == "__main__":
    main()
