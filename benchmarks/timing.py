"""Wall-clock timing shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import statistics
import time


def timed(fn, repeats: int, untimed: int = 1) -> tuple[list[float], float]:
    """(wall s of the first ``untimed`` calls — compilation —, median s of ``repeats`` further
    calls). ``fn()`` returns what to block on."""
    import jax

    times = []
    for _ in range(untimed + repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return times[:untimed], statistics.median(times[untimed:])


def load_average() -> str:
    """``uptime``'s line (the load average), to print beside numbers taken on a shared machine."""
    import os
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(f"{v:.2f}" for v in os.getloadavg())
