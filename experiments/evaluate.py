"""Evaluation harness: LTV and wall time of ours, AdaIN and Gatys on every content × style pair.

    python -m experiments.evaluate [--checkpoint DIR] [--content DIR] [--style DIR] [--size 256]
        [--limit K] [--methods content,ours,adain,gatys100,gatys300] [--out out/eval_256] [--seed 0]

Pairs: every content × style of the two folders (12 × 12 = 144 with ``../shared/data/eval``), in a
fixed shuffle seeded by ``--seed`` (:func:`pairs`: each run of 12 consecutive pairs has 12 distinct
contents and 12 distinct styles); ``--limit K`` takes the first ``K`` (so a quick run still mixes
contents and styles, and a larger ``K`` extends a smaller one). Both images are loaded with
their longest side at ``--size`` (aspect kept), so image shapes differ from pair to pair and each
new shape compiles (slow on a CPU: docs/DESIGN.md, "Evaluation"); with
``--square``, the centre square of each image resized to ``size × size``: one shape, one
compilation per method.

Methods, all on the same VGG-19 (``fs.load_vgg19()``), loss, pairs and resolution:

* ``content``: the content image itself (the starting point of ours and Gatys; time 0);
* ``ours``: ``fs.solve`` with the checkpoint's parameters (default: the shipped solver, or random
  parameters with a warning while none ships);
* ``adain``: the JAX AdaIN port (``experiments/baselines/adain.py``), ``alpha = 1``;
* ``gatysN`` (any ``N ≥ 1``, e.g. ``gatys100``, ``gatys300``): ``N`` L-BFGS steps on LTV from
  ``x_c`` (``fs.gatys``). Much slower than the others (docs/DESIGN.md): leave it out of
  ``--methods`` for a quick run; stop and rerun to continue.

Metric: ``LTV`` with ``β = 1`` (SPEC §1, ``fs.ltv`` with its default all-ones style weights) of
the output clipped to [0,1], with the style's Grams at the same resolution. Lower is better.

Timing: per pair and method, the wall time of the call that turns the images ``(x_c, x_s)`` into
the output, ending with ``jax.block_until_ready``: it includes the style's Grams for ours and
Gatys, and encoding the style for AdaIN (as the original does). Compilation is excluded: before
the timed call, whatever the call compiles for a shape not seen yet (Grams per style shape, the
solver / Gatys step per content shape, AdaIN per content-and-style shape) is compiled by one
untimed warm-up call (for Gatys, a 1-step run: its jitted L-BFGS step compiles once per shape).

Writes to ``--out``: ``results.jsonl`` (one line per pair × method: content, style, method, ltv,
seconds; appended as it goes, so an interrupted run continues where it stopped when rerun with
the same ``--out``: pairs and methods already there are skipped), ``results.md`` (the table
printed at the end: per method mean ± std and median LTV, mean time, time ratio to AdaIN, pairs
where the method's LTV is below AdaIN's), ``grid.png`` (one row per pair for the first 6 pairs:
content | style | each method's output, at the content's height) and ``images/`` (the outputs
shown in the grid).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

import flexsolver as fs
from experiments.common import cli_errors, load_solver
from flexsolver.shipped import shipped_checkpoint
from flexsolver import images
from flexsolver.timing import timed

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval"
DEFAULT_METHODS = "content,ours,adain,gatys100,gatys300"
FIXED_METHODS = ("content", "ours", "adain")
GATYS = re.compile(r"gatys([1-9][0-9]*)$")
GRID_ROWS = 6
MIN_SIZE = 32
RESULTS, TABLE, GRID, CONFIG, IMAGES = "results.jsonl", "results.md", "grid.png", "config.json", "images"


# ---------------------------------------------------------------- inputs (pure, validated)


def list_images(folder: str | Path, what: str) -> list[Path]:
    """The image files of ``folder`` (by extension), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist")
    files = [Path(p) for p in images.list_images(folder)]
    if not files:
        raise ValueError(f"{what} folder {folder} holds no images ({', '.join(images.IMAGE_SUFFIXES)})")
    return files


def pairs(contents: Sequence, styles: Sequence, limit: int | None = None, seed: int = 0) -> list[tuple]:
    """Every ``(content, style)`` once, in a fixed order seeded by ``seed``; the first ``limit``.

    Contents and styles are shuffled, then paired along "diagonals": with ``n = min(#contents,
    #styles)``, pairs ``k·n … k·n + n − 1`` use ``n`` distinct contents and ``n`` distinct styles,
    so a short prefix mixes both (a plain shuffle of the 144 pairs often repeats one style).
    """
    rng = np.random.default_rng(seed)
    c_order, s_order = rng.permutation(len(contents)), rng.permutation(len(styles))
    small, large = min(len(contents), len(styles)), max(len(contents), len(styles))
    chosen = []
    for d in range(large):
        for i in range(small):
            j = (i + d) % large
            ci, si = (i, j) if len(contents) <= len(styles) else (j, i)
            chosen.append((contents[c_order[ci]], styles[s_order[si]]))
    return chosen if limit is None else chosen[:limit]


def gatys_steps(method: str) -> int | None:
    """``N`` for ``"gatysN"``, else ``None``."""
    m = GATYS.match(method)
    return int(m.group(1)) if m else None


def parse_methods(text: str) -> list[str]:
    """``"content,ours,gatys100"`` → the list, checked (known names, no repeats, not empty)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--methods is empty")
    for name in names:
        if name not in FIXED_METHODS and gatys_steps(name) is None:
            raise ValueError(f"unknown method {name!r}; choose among content, ours, adain, gatysN (N >= 1 L-BFGS steps)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"--methods repeats {', '.join(repeated)}")
    return names


# ---------------------------------------------------------------- methods and timing


@dataclass
class Method:
    """A method as ``run(x_c, x_s) -> output``, timed after compiling what it needs.

    ``keys(x_c.shape, x_s.shape)`` names what a call compiles (shared with the other methods
    through ``seen``); when one is new, ``warmup`` (a cheap call compiling all of it) runs first,
    untimed.
    """

    name: str
    run: Callable
    keys: Callable = lambda c, s: set()  # noqa: E731
    warmup: Callable | None = None
    seen: set = field(default_factory=set)

    def __call__(self, x_c, x_s):
        keys = self.keys(x_c.shape, x_s.shape)
        if not keys <= self.seen:
            jax.block_until_ready((self.warmup or self.run)(x_c, x_s))
            self.seen |= keys
        return timed(self.run, x_c, x_s)


def make_methods(names: Sequence[str], vgg, solver=None, decoder=None) -> dict[str, Method]:
    """``{name: Method}``; ``solver`` (a ``Solver``) for ours, ``decoder`` for AdaIN."""
    seen: set = set()  # compiled shapes, shared: the Grams of a style shape compile once for all
    methods = {}
    for name in names:
        if name == "content":
            methods[name] = Method(name, lambda x_c, x_s: x_c)
        elif name == "ours":

            def ours(x_c, x_s, solver=solver):
                return fs.solve(solver, x_c, fs.style_grams(vgg, x_s))

            methods[name] = Method(name, ours, lambda c, s: {("grams", s), ("solve", c)}, seen=seen)
        elif name == "adain":
            from experiments.baselines import adain

            methods[name] = Method(name, adain.make_stylizer(vgg, decoder), lambda c, s: {("adain", c, s)}, seen=seen)
        else:
            steps = gatys_steps(name)

            def gatys(x_c, x_s, steps=steps):
                return fs.gatys(vgg, x_c, fs.style_grams(vgg, x_s), steps=steps, method="lbfgs")

            keys = lambda c, s: {("grams", s), ("gatys", c)}  # noqa: E731
            methods[name] = Method(name, gatys, keys, warmup=partial(gatys, steps=1), seen=seen)
    return methods


# ---------------------------------------------------------------- results on disk


def read_records(path: Path) -> list[dict]:
    """The records of ``results.jsonl``; a torn last line (an interrupted write) is dropped and
    the file rewritten without it, so that appending goes on cleanly."""
    if not path.exists():
        return []
    text = path.read_text()
    records, good = [], []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            if {"content", "style", "method", "ltv", "seconds"} <= set(rec):
                records.append(rec)
                good.append(line)
        except json.JSONDecodeError:
            pass
    if text and (len(good) != len(text.splitlines()) or not text.endswith("\n")):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in good))
        os.replace(tmp, path)
    return records


def append_record(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def check_config(out: Path, config: dict) -> dict:
    """Checks ``config`` (size, checkpoint) against the one recorded in ``out`` and returns the
    recorded one (``{}`` when none is yet; see :func:`write_config`)."""
    path = out / CONFIG
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ValueError(f"{path} is not valid JSON; remove it or choose another --out") from None
    diff = [f"{k} {old.get(k)!r} there, {v!r} now" for k, v in config.items() if old.get(k) != v]
    if diff:
        raise ValueError(f"{out} holds results of another setting ({'; '.join(diff)}); choose another --out")
    return old


def write_config(out: Path, config: dict) -> None:
    tmp = out / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(config) + "\n")
    os.replace(tmp, out / CONFIG)


def image_name(content: str, style: str, method: str) -> str:
    return f"{Path(content).stem}__{Path(style).stem}__{method}.png"


# ---------------------------------------------------------------- summary (pure)


def summarise(records: Iterable[dict], methods: Sequence[str], selected: Sequence[tuple[str, str]]) -> list[dict]:
    """One row per method over the ``selected`` ``(content, style)`` names it has results for."""
    by_method: dict[str, dict] = {m: {} for m in methods}
    for r in records:
        if r["method"] in by_method:
            by_method[r["method"]][(r["content"], r["style"])] = r
    adain = by_method.get("adain", {})
    adain_secs = [adain[p]["seconds"] for p in selected if p in adain]
    rows = []
    for m in methods:
        done = [p for p in selected if p in by_method[m]]
        ltv = np.array([by_method[m][p]["ltv"] for p in done], float)
        secs = np.array([by_method[m][p]["seconds"] for p in done], float)
        common = [p for p in done if p in adain]
        row = {
            "method": m,
            "pairs": len(done),
            "ltv_mean": float(ltv.mean()) if len(done) else None,
            "ltv_std": float(ltv.std()) if len(done) else None,
            "ltv_median": float(np.median(ltv)) if len(done) else None,
            "seconds": float(secs.mean()) if len(done) else None,
            "vs_adain": None,
            "beats_adain": None,
        }
        if adain_secs and len(done) and np.mean(adain_secs) > 0:
            row["vs_adain"] = row["seconds"] / float(np.mean(adain_secs))
        if m != "adain" and common:
            wins = sum(by_method[m][p]["ltv"] < adain[p]["ltv"] for p in common)
            row["beats_adain"] = (int(wins), len(common))
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    head = "| method | pairs | LTV mean ± std | LTV median | time s | time / AdaIN | LTV < AdaIN |"
    lines = [head, "|---|---|---|---|---|---|---|"]

    def num(v, fmt):
        return "—" if v is None else format(v, fmt)

    for r in rows:
        mean = "—" if r["ltv_mean"] is None else f"{r['ltv_mean']:.4f} ± {r['ltv_std']:.4f}"
        beats = "—" if r["beats_adain"] is None else f"{r['beats_adain'][0]}/{r['beats_adain'][1]}"
        lines.append(
            f"| {r['method']} | {r['pairs']} | {mean} | {num(r['ltv_median'], '.4f')} | "
            f"{num(r['seconds'], '.3f')} | {num(r['vs_adain'], '.2f')} | {beats} |"
        )
    return "\n".join(lines)


def machine() -> str:
    dev = jax.devices()[0]
    return f"{platform.platform()}, {os.cpu_count()} CPUs, JAX {jax.__version__} on {dev.platform} ({dev.device_kind})"


# ---------------------------------------------------------------- grid


def grid_row(x_c, x_s, outputs: Sequence) -> list:
    """content | style | outputs, each resized to the content's height (aspect kept)."""
    h = x_c.shape[0]

    def fit(x):
        if x is None or x.shape[0] == h:
            return x
        return np.clip(images.resize(x, (h, max(1, round(x.shape[1] * h / x.shape[0])))), 0.0, 1.0)

    return [x_c, fit(x_s), *(fit(o) for o in outputs)]


def load_eval_image(path, size: int, square: bool) -> np.ndarray:
    """An evaluation image: longest side ``size`` (aspect kept), or with ``square`` the centre
    square resized to ``size × size`` (one shape for every pair: each method compiles once)."""
    if not square:
        return images.load_image(path, max_side=size)
    x = images.center_square(images.load_image(path))
    return np.clip(images.resize(x, (size, size), method="lanczos"), 0.0, 1.0)


def write_grid(out: Path, selected: Sequence[tuple[Path, Path]], methods: Sequence[str], size: int,
               square: bool = False) -> None:
    rows = []
    shown = [m for m in methods if m != "content"]
    for c, s in selected[:GRID_ROWS]:
        x_c, x_s = load_eval_image(c, size, square), load_eval_image(s, size, square)
        outs = []
        for m in shown:
            p = out / IMAGES / image_name(c.name, s.name, m)
            outs.append(images.load_image(p) if p.exists() else None)
        rows.append(grid_row(x_c, x_s, outs))
    if rows:
        images.save_image(out / GRID, images.image_grid(rows))


# ---------------------------------------------------------------- main


def evaluate(args) -> str:
    methods = parse_methods(args.methods)
    if args.size < MIN_SIZE:
        raise ValueError(f"--size must be >= {MIN_SIZE}, got {args.size}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    contents, styles = list_images(args.content, "content"), list_images(args.style, "style")
    selected = pairs(contents, styles, args.limit, args.seed)
    out = Path(args.out if args.out is not None else f"out/eval_{args.size}")
    out.mkdir(parents=True, exist_ok=True)
    (out / IMAGES).mkdir(exist_ok=True)
    # the resolved folder, also for the shipped default: results of another model never mix
    checkpoint = str(Path(args.checkpoint if args.checkpoint is not None else shipped_checkpoint()).resolve())
    config = {"size": args.size, "square": args.square, "checkpoint": checkpoint}
    recorded = check_config(out, config)
    solver_what = recorded.get("solver", "not loaded")  # what the checkpoint held, for the header

    results = out / RESULTS
    records = read_records(results)
    done = {(r["content"], r["style"], r["method"]) for r in records}
    todo = [[m for m in methods if (c.name, s.name, m) not in done] for c, s in selected]
    if any(todo):
        vgg = fs.load_vgg19()
        solver = decoder = None
        if "ours" in methods:
            solver, solver_what = load_solver(args.checkpoint, random=False)
        if "adain" in methods:
            from experiments.baselines import adain

            decoder = adain.load_decoder()
        runners = make_methods(methods, vgg, solver, decoder)
        # only once the models loaded: a bad --checkpoint leaves no trace
        write_config(out, config if solver_what == "not loaded" else {**config, "solver": solver_what})
        bar = tqdm(list(zip(selected, todo)), desc="pairs", unit="pair")
        for i, ((c, s), names) in enumerate(bar):
            if not names:
                continue
            x_c, x_s = load_eval_image(c, args.size, args.square), load_eval_image(s, args.size, args.square)
            grams = fs.style_grams(vgg, x_s)
            for m in names:
                bar.set_postfix_str(f"{c.stem} × {s.stem}: {m}")
                y, secs = runners[m](x_c, x_s)
                y = np.clip(np.asarray(y, np.float32), 0.0, 1.0)
                value = float(fs.ltv(vgg, y, x_c, grams))
                record = {"content": c.name, "style": s.name, "method": m, "ltv": value, "seconds": secs}
                append_record(results, record)
                records.append(record)
                if i < GRID_ROWS and m != "content":
                    images.save_image(out / IMAGES / image_name(c.name, s.name, m), y)
    write_grid(out, selected, methods, args.size, args.square)

    table = markdown_table(summarise(records, methods, [(c.name, s.name) for c, s in selected]))
    header = (
        f"Evaluation at size {args.size}{f'×{args.size} (centre squares)' if args.square else ' (longest side)'}: {len(selected)} pairs ({len(contents)} contents × {len(styles)} styles, "
        f"seed {args.seed}), checkpoint {args.checkpoint or 'default'} ({solver_what}), machine: {machine()}.\n\n"
        "LTV with β = 1 (SPEC §1) of each output clipped to [0,1], lower is better; time: wall seconds per pair "
        "after compilation, including the style's Grams (ours, Gatys) or style encoding (AdaIN); "
        "time / AdaIN: ratio of mean times; LTV < AdaIN: pairs where the method's LTV is lower than AdaIN's.\n"
    )
    text = header + "\n" + table + "\n"
    tmp = out / (TABLE + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, out / TABLE)
    return table + f"\n\nwrote {out / TABLE}, {out / RESULTS}, {out / GRID}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="training workdir or exported checkpoint (default: shipped)")
    parser.add_argument("--content", default=str(DATA / "content"), help="folder of content images")
    parser.add_argument("--style", default=str(DATA / "style"), help="folder of style images")
    parser.add_argument("--size", type=int, default=256, help="longest side of every image (px)")
    parser.add_argument("--square", action="store_true",
                        help="centre-square crops at SIZE×SIZE (one shape: no compilation per pair)")
    parser.add_argument("--limit", type=int, default=None, help="first K pairs of the seeded shuffle")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated: content, ours, adain, gatysN")
    parser.add_argument("--out", default=None, help="output folder (default out/eval_<size>); rerun to resume")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pair shuffle")
    args = parser.parse_args(argv)
    with cli_errors():
        print(evaluate(args))


if __name__ == "__main__":
    main()
