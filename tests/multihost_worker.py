"""One process of the 2-process ``jax.distributed`` check in ``tests/test_multihost.py``.

    XLA_FLAGS=--xla_force_host_platform_device_count=1 \\
        python -m tests.multihost_worker --coordinator 127.0.0.1:PORT --num-processes 2 \\
        --process-id I --out params.npz

Each process has one local CPU device; the pmapped SGD train step runs over the global devices
of all processes (gradients ``pmean``-ed across processes through the CPU collectives, gloo),
each process feeding its own slice of the global batch (``--process-id`` picks it).
Process 0 writes the updated parameters, flattened, and the loss to ``--out``.
Exit code 3: the CPU collectives are unavailable in this JAX (the test skips).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

UNAVAILABLE = 3
SEED, N, L, SIZE = 1, 1, 4, 32  # tiny: the time is compiling (VGG's backward)


def global_batch():
    """The global batch of 2 pairs (the same as ``tests/test_training.py``'s ``fixed_batch``)."""
    import numpy as np

    from tests.helpers import sample_image

    s = (SIZE, SIZE)
    x_c = np.stack([sample_image("astronaut", s), sample_image("rocket", s)])
    x_s = np.stack([sample_image("coffee", s), sample_image("chelsea", s)])
    return {"x_c": x_c, "x_s": x_s, "betas": np.full((2, 5), 1 / 0.9, np.float32)}


def sgd_step(devices=None):
    """The train step with plain SGD (lr 1: the parameter change is the mean gradient)."""
    import jax
    import optax

    from flexsolver.training import AXIS, train_step

    sgd = optax.sgd(1.0)
    step = jax.pmap(
        partial(train_step, optimizer=sgd, nonlinearity="heaviside"),
        axis_name=AXIS, in_axes=(0, 0, None, 0), devices=devices,
    )
    return step, sgd


def flatten(params) -> dict:
    import jax
    import numpy as np

    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=int, default=60, help="seconds to wait for the other processes")
    args = parser.parse_args(argv)

    import jax

    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError) as e:
        print(f"no CPU collectives: {e}", file=sys.stderr)
        raise SystemExit(UNAVAILABLE) from None
    jax.distributed.initialize(
        args.coordinator, args.num_processes, args.process_id, initialization_timeout=args.timeout,
    )
    import numpy as np

    import flexsolver as fs
    from flexsolver.training import replicate, unreplicate

    assert jax.process_count() == args.num_processes, jax.process_count()
    local = jax.local_devices()
    print(f"process {jax.process_index()}/{jax.process_count()}: {len(local)} local, "
          f"{jax.device_count()} global devices", file=sys.stderr, flush=True)

    batch = global_batch()
    per_process = batch["x_c"].shape[0] // args.num_processes
    mine = slice(args.process_id * per_process, (args.process_id + 1) * per_process)
    # Leading axis: local devices (1 here), then the per-device batch.
    local_batch = {k: v[mine].reshape(len(local), -1, *v.shape[1:]) for k, v in batch.items()}

    vgg = fs.load_vgg19()
    params = fs.init_params(jax.random.PRNGKey(SEED), n=N, l=L)
    step, sgd = sgd_step()  # devices=None: every device of every process
    try:
        p, s, metrics = step(replicate(params), replicate(sgd.init(params)), vgg, local_batch)
        jax.block_until_ready(p)
    except Exception as e:  # noqa: BLE001 - report "collectives not implemented" as unavailable
        text = str(e)
        if "ollective" in text and ("nimplemented" in text or "not supported" in text or "not implemented" in text):
            print(f"no CPU collectives: {text}", file=sys.stderr)
            raise SystemExit(UNAVAILABLE) from None
        raise
    if args.process_id == 0:
        np.savez(args.out, loss=np.asarray(metrics["loss"][0]), **flatten(unreplicate(p)))
    print(f"process {args.process_id}: loss {float(metrics['loss'][0]):.6f}", file=sys.stderr, flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
