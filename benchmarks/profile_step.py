"""Where a training step's time goes: a ``jax.profiler`` trace joined with the compiled program.

    python benchmarks/profile_step.py                 # N=4, L=32, 128 px, batch 4
    python benchmarks/profile_step.py --size 64 --top 20 --trace-dir /tmp/step_trace

The step's ``value_and_grad`` (``flexsolver.training.loss_fn``, the paper's loss, synthetic data as
in ``train_speed.py``) is compiled as one ``jax.jit``, timed (median of ``--repeats`` calls), then
run once under ``jax.profiler.trace``. Every XLA op of the trace is matched with its line in the
compiled HLO, and the table sums the ops' times per

* **kind**: the op's name without its number (``ynn_fusion``: products and convolutions run by
  YNNPACK; ``*_fusion``: XLA's elementwise loops, named after their root);
* **pass**: ``bwd`` when JAX's metadata says the op comes from a transpose (the backward pass);
* **part**: ``vgg`` for VGG-19 (its jitted ``_features``), ``solver`` for the rest;
* **source**: the JAX primitive the op was made from.

Times are summed over ops, which XLA's CPU runtime may run two at a time on 2 cores, so the total
can exceed the step's wall time: read the table as shares. The trace (Perfetto JSON) stays in
``--trace-dir``; open it in ui.perfetto.dev for the timeline.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from flexsolver.network import init_params  # noqa: E402
from flexsolver.training import loss_fn  # noqa: E402
from flexsolver.vgg import load_vgg19  # noqa: E402
from timing import load_average, timed  # noqa: E402
from train_speed import synthetic_batch  # noqa: E402


def op_metadata(hlo: str) -> dict[str, str]:
    """``{op name: JAX op_name metadata}`` of every instruction of a compiled HLO text."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?op_name=\"([^\"]*)\"", hlo, re.M)}


def op_durations(trace_dir: str) -> dict[str, tuple[float, int]]:
    """``{op name: (ms, calls)}`` summed over the newest Perfetto trace under ``trace_dir``."""
    path = sorted(glob.glob(f"{trace_dir}/**/*perfetto_trace.json.gz", recursive=True))[-1]
    trace = json.load(gzip.open(path))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    out = collections.defaultdict(lambda: [0.0, 0])
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            out[e.get("name", "?")][0] += e["dur"] / 1e3
            out[e.get("name", "?")][1] += 1
    return {k: (ms, n) for k, (ms, n) in out.items()}


def grouped(durations: dict, metadata: dict) -> list[tuple[tuple[str, str, str, str], float, int]]:
    """``[((kind, pass, part, source), ms, ops)]``, largest first, over the ops of the program."""
    groups = collections.defaultdict(lambda: [0.0, 0])
    for name, (ms, _) in durations.items():
        if name not in metadata:
            continue  # the runtime's own spans (executor, thread pool, Python)
        op = metadata[name]
        key = (
            re.sub(r"[._]\d+$", "", name),
            "bwd" if "transpose(" in op else "fwd",
            "vgg" if "_features" in op else "solver",
            op.split("/")[-1],
        )
        groups[key][0] += ms
        groups[key][1] += 1
    return sorted(((k, ms, n) for k, (ms, n) in groups.items()), key=lambda r: -r[1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--l", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=30, help="rows of the table")
    parser.add_argument("--trace-dir", default="", help="where the trace goes (default: a temporary folder)")
    args = parser.parse_args(argv)
    print(load_average(), flush=True)

    vgg = load_vgg19()
    batch = {k: jnp.asarray(v) for k, v in synthetic_batch(args.batch, args.size).items()}
    params = init_params(jax.random.PRNGKey(0), args.n, args.l)
    step = jax.jit(lambda p, v, b: jax.value_and_grad(loss_fn, has_aux=True)(p, v, b, "heaviside"))
    compiled = step.lower(params, vgg, batch).compile()
    (first,), median = timed(lambda: compiled(params, vgg, batch), args.repeats)
    print(f"value_and_grad of the step, N={args.n} L={args.l} {args.size} px batch {args.batch}: "
          f"median {median:.3f} s of {args.repeats} (first call {first:.2f} s)\n")

    trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="step_trace_")
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        jax.block_until_ready(compiled(params, vgg, batch))
    rows = grouped(op_durations(trace_dir), op_metadata(compiled.as_text()))
    total = sum(ms for _, ms, _ in rows)
    print("| kind | pass | part | source | ms | ops | share |\n|---|---|---|---|---|---|---|")
    for (kind, pass_, part, source), ms, n in rows[: args.top]:
        print(f"| {kind} | {pass_} | {part} | {source} | {ms:.1f} | {n} | {100 * ms / total:.1f}% |")
    print(f"\nsum over all ops: {total:.0f} ms; trace in {trace_dir}")


if __name__ == "__main__":
    main()
