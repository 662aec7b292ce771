"""Multi-host data parallelism on loopback: 2 ``jax.distributed`` processes, 1 CPU device each,
give the same SGD update as 1 process on 1 device with the whole global batch.

The processes (``tests/multihost_worker.py``) talk through JAX's CPU collectives (gloo) on
127.0.0.1; each feeds its own half of the global batch of 2 pairs, as ``experiments/train.py``
does with ``--distributed``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.multihost_worker import UNAVAILABLE, flatten, global_batch, sgd_step

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # workers and reference, compiles included, on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_workers(out: Path, count: int = 2) -> tuple[list[subprocess.Popen], list[Path]]:
    """Starts ``count`` worker processes, 1 CPU device each, on a free loopback port."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, "--xla_force_host_platform_device_count=1"])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    coordinator = f"127.0.0.1:{free_port()}"
    logs = [out.parent / f"worker{i}.log" for i in range(count)]
    procs = []
    try:
        for i in range(count):
            cmd = [sys.executable, "-m", "tests.multihost_worker", "--coordinator", coordinator,
                   "--num-processes", str(count), "--process-id", str(i), "--out", str(out), "--timeout", "120"]
            with logs[i].open("w") as log:
                procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log))
    except BaseException:
        stop(procs)
        raise
    return procs, logs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_workers(procs, logs, deadline: float) -> list[tuple[int, str]]:
    """(exit code, stderr) of every worker; kills them all when ``deadline`` passes."""
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {len(procs)} processes did not finish in {TIMEOUT_S} s:\n" + "\n".join(
            f"--- worker {i}\n{log.read_text()[-3000:]}" for i, log in enumerate(logs)))
    finally:
        stop(procs)
    return [(p.returncode, log.read_text()) for p, log in zip(procs, logs)]


@pytest.mark.slow
def test_two_processes_give_the_same_update_as_one(vgg, tmp_path):
    if "jax_cpu_collectives_implementation" not in jax.config.values:
        pytest.skip(f"JAX {jax.__version__} has no CPU collectives (jax_cpu_collectives_implementation)")
    out = tmp_path / "params.npz"
    deadline = time.monotonic() + TIMEOUT_S
    procs, logs = start_workers(out)
    try:
        # The reference, computed while the workers run: one process, one device, the whole batch.
        import flexsolver as fs
        from flexsolver.training import replicate, shard, unreplicate
        from tests.multihost_worker import L, N, SEED

        devices = jax.local_devices()[:1]
        params = fs.init_params(jax.random.PRNGKey(SEED), n=N, l=L)
        step, sgd = sgd_step(devices)
        p, _, metrics = step(replicate(params, devices), replicate(sgd.init(params), devices), vgg,
                             shard(global_batch(), 1))
        expected = flatten(unreplicate(p))
        initial = flatten(params)
    finally:
        results = wait_workers(procs, logs, deadline)
    if any(code == UNAVAILABLE for code, _ in results):
        pytest.skip("CPU collectives unavailable: " + " | ".join(log.strip()[-500:] for _, log in results))
    for i, (code, log) in enumerate(results):
        assert code == 0, f"worker {i} exited with {code}:\n{log[-3000:]}"

    got = dict(np.load(out))
    np.testing.assert_allclose(got.pop("loss"), float(metrics["loss"][0]), rtol=1e-5)
    assert got.keys() == expected.keys()
    for key in expected:
        # SGD with lr 1: params − grad. Compare the changes (the gradients) too, not only params.
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-3, atol=1e-6, err_msg=key)
        change, ref = got[key] - initial[key], expected[key] - initial[key]
        np.testing.assert_allclose(change, ref, rtol=1e-3, atol=1e-3 * float(np.abs(ref).max()) + 1e-9, err_msg=key)
    assert max(float(np.abs(v - initial[k]).max()) for k, v in expected.items()) > 0
