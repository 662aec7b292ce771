"""XLA CPU flags against the defaults, on the two halves of a training step.

    python benchmarks/xla_flags.py [--repeats 3]

For each flag set, a fresh process (XLA reads ``XLA_FLAGS`` once, at start) times the median of
``--repeats`` calls, after one compiling call, of the 128 px, batch 4, N=4, L=32 step's parts:

* **network**: ``value_and_grad`` of a dummy loss ``Σ_t mean X(t)²`` of ``unroll`` w.r.t. the params;
* **VGG loss**: ``value_and_grad`` of ``Σ_t LTV(X(t))`` w.r.t. the 16 images ``X(t)``.

The defaults are the first row; ratios are against it, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAG_SETS = (
    "",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_prefer_vector_width=512",
    "--xla_cpu_enable_concurrency_optimized_scheduler=true",
)

CHILD = r"""
import json, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import jax, jax.numpy as jnp, numpy as np
from timing import timed
from flexsolver.losses import style_grams
from flexsolver.network import init_params
from flexsolver.solver import unroll
from flexsolver.training import batched_ltv
from flexsolver.vgg import CONTENT_LAYER, load_vgg19, vgg_features
vgg = load_vgg19()
rng = np.random.default_rng(0)
x_c = jnp.asarray(rng.random((4, 128, 128, 3), np.float32))
grams = jax.jit(style_grams)(vgg, jnp.asarray(rng.random((4, 128, 128, 3), np.float32)))
content = vgg_features(vgg, x_c, (CONTENT_LAYER,))
weights = {{k: jnp.full(4, 1 / 0.9) for k in grams}}
params = init_params(jax.random.PRNGKey(0), 4, 32)
net = jax.jit(jax.value_and_grad(lambda p: sum(jnp.mean(x**2) for x in unroll(p, x_c, [grams], None, weights, None, "heaviside", True))))
outputs = unroll(params, x_c, [grams], None, weights, None, "heaviside", True)
loss = jax.jit(jax.value_and_grad(lambda xs: batched_ltv(vgg, xs, x_c, grams, weights, content).mean(axis=1).sum()))
print("RESULT " + json.dumps({{"network": timed(lambda: net(params), {repeats})[1],
                               "vgg_loss": timed(lambda: loss(outputs), {repeats})[1]}}))
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flags", nargs="+", default=None,
                        help="flag sets to compare with the defaults (default: %s)" % " ".join(FLAG_SETS[1:]))
    args = parser.parse_args(argv)
    flag_sets = ("", *args.flags) if args.flags else FLAG_SETS
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from timing import load_average

    print(load_average(), flush=True)
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), repeats=args.repeats)
    rows = []
    for flags in flag_sets:
        env = {**os.environ, "XLA_FLAGS": flags}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            err = (proc.stderr.strip().splitlines() or ["?"])[-1]
            rows.append((flags, None, err[:80]))
            print(f"{flags or '(defaults)'}: failed: {err[:200]}", flush=True)
            continue
        rows.append((flags, json.loads(line[len("RESULT "):]), ""))
        print(f"{flags or '(defaults)'}: {rows[-1][1]}", flush=True)
    base = rows[0][1]
    print("\n| XLA_FLAGS | network s | VGG loss s | network / default | VGG loss / default |")
    print("|---|---|---|---|---|")
    for flags, r, err in rows:
        if r is None:
            print(f"| `{flags}` | failed: {err} | | | |")
        else:
            print(f"| `{flags or '(defaults)'}` | {r['network']:.2f} | {r['vgg_loss']:.2f} | "
                  f"{r['network'] / base['network']:.2f} | {r['vgg_loss'] / base['vgg_loss']:.2f} |")
    print(load_average())


if __name__ == "__main__":
    main()
