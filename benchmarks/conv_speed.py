"""3×3 convolution speed on this machine: ``flexsolver.conv.conv3x3`` against the plain form.

    python benchmarks/conv_speed.py            # every shape, forward and forward+backward
    python benchmarks/conv_speed.py --repeats 5

Shapes are those of a training step (N=4, L=32, 128 px, batch 4): VGG-19 on the 16 images
``X(t)`` and the solver network's thin layers on the batch of 4. For each shape, in one run:

* **lax VALID**: reflect-pad then ``lax.conv_general_dilated(..., "VALID")`` with JAX's autodiff
  (what the project did before; ``conv.conv3x3_reference``);
* **SAME+crop**: the direct CPU lowering alone (SAME-then-crop forward, custom VJP), what
  ``conv3x3`` did before Winograd;
* **ours**: ``conv.conv3x3`` (on CPU: Winograd where it pays, F(4×4,3×3) with gradients on many
  tiles, else F(2×2,3×3); a thin output by products then shifted sums; else SAME+crop);
* **torch**: ``torch.nn.functional.conv2d`` on a reflect-padded NCHW tensor, the original
  implementations' form (skipped when torch is not installed).

Times are medians of ``--repeats`` calls after one compiling call; GFLOP/s counts
the direct method's ``2·9·B·H·W·C_in·C_out`` per pass, ×3 for forward+backward (the input and
the weight gradients); Winograd does 2.25× (F(2×2)) or 4× (F(4×4)) fewer multiplications.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from flexsolver.conv import _conv3x3_cpu, conv3x3, conv3x3_reference  # noqa: E402
from timing import load_average, timed  # noqa: E402

SHAPES = (  # (where, B, H, C_in, C_out)
    ("VGG conv1_2", 16, 128, 64, 64),
    ("VGG conv2_2", 16, 64, 128, 128),
    ("VGG conv3_2", 16, 32, 256, 256),
    ("VGG conv4_2", 16, 16, 512, 512),
    ("solver forward 1", 4, 128, 3, 32),
    ("solver forward 2", 4, 64, 32, 64),
    ("solver backward 1→0", 4, 128, 32, 3),
    ("solver backward 3→2", 4, 32, 128, 64),
    ("stylise 512², VGG conv3_2", 1, 128, 256, 256),
    ("stylise 512², VGG conv4_2", 1, 64, 512, 512),
)


def jax_times(fn, x, w, repeats):
    fwd = jax.jit(lambda x, w: fn(x, w))
    grad = jax.jit(jax.grad(lambda x, w: jnp.sum(fn(x, w) ** 2), argnums=(0, 1)))
    return timed(lambda: fwd(x, w), repeats)[1], timed(lambda: grad(x, w), repeats)[1]


def torch_times(x, w, repeats):
    try:
        import torch
    except ImportError:
        return None, None
    xt = torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))
    wt = torch.from_numpy(np.ascontiguousarray(np.asarray(w).transpose(3, 2, 0, 1)))

    def fwd():
        with torch.inference_mode():
            return torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (1, 1, 1, 1), mode="reflect"), wt)

    xg, wg = xt.clone().requires_grad_(), wt.clone().requires_grad_()

    def both():
        y = torch.nn.functional.conv2d(torch.nn.functional.pad(xg, (1, 1, 1, 1), mode="reflect"), wg)
        (y**2).sum().backward()

    return tuple(timed(f, repeats)[1] for f in (fwd, both))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(load_average(), flush=True)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; median of {args.repeats}\n")
    print("| shape (B×H²×C_in→C_out) | pass | lax VALID ms | SAME+crop ms | ours ms | torch ms | ours GFLOP/s "
          "| lax VALID / ours | SAME+crop / ours | ours / torch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for where, b, h, c_in, c_out in SHAPES:
        x = jnp.asarray(rng.standard_normal((b, h, h, c_in), np.float32))
        w = jnp.asarray(rng.standard_normal((3, 3, c_in, c_out), np.float32) * 0.1)
        ref = jax_times(lambda x, w: conv3x3_reference(x, w, "reflect"), x, w, args.repeats)
        direct = jax_times(lambda x, w: _conv3x3_cpu(x, w, "reflect"), x, w, args.repeats)
        ours = jax_times(lambda x, w: conv3x3(x, w, None, "reflect"), x, w, args.repeats)
        theirs = torch_times(x, w, args.repeats)
        flops = 2 * 9 * b * h * h * c_in * c_out
        for k, name in enumerate(("forward", "forward+backward")):
            t_ref, t_direct, t_ours, t_torch = ref[k], direct[k], ours[k], theirs[k]
            gflops = flops * (1 if k == 0 else 3) / t_ours / 1e9
            torch_ms = f"{1e3 * t_torch:.1f}" if t_torch else "—"
            vs_torch = f"{t_ours / t_torch:.2f}" if t_torch else "—"
            print(f"| {where}: {b}×{h}²×{c_in}→{c_out} | {name} | {1e3 * t_ref:.1f} | {1e3 * t_direct:.1f} | "
                  f"{1e3 * t_ours:.1f} | {torch_ms} | {gflops:.0f} | {t_ref / t_ours:.2f} | {t_direct / t_ours:.2f} | "
                  f"{vs_torch} |", flush=True)


if __name__ == "__main__":
    main()
