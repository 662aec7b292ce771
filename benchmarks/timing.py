"""Wall-clock timing shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flexsolver.timing import stopwatch  # noqa: E402


def timed(fn, repeats: int, untimed: int = 1) -> tuple[list[float], float]:
    """(wall s of the first ``untimed`` calls — compilation —, median s of ``repeats`` further
    calls), each timed by :func:`flexsolver.timing.stopwatch`. ``fn()`` returns what to block on."""
    times = []
    for _ in range(untimed + repeats):
        with stopwatch() as clock:
            clock.block(fn())
        times.append(clock.seconds)
    return times[:untimed], statistics.median(times[untimed:])


def load_average() -> str:
    """``uptime``'s line (the load average), to print beside numbers taken on a shared machine."""
    import os
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(f"{v:.2f}" for v in os.getloadavg())
