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
