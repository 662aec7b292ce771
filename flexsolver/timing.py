"""Measuring a run: a wall-clock stopwatch that can wait for JAX's asynchronous results, and a
counter of XLA compilations.

JAX dispatches work asynchronously, so a timing must end with ``jax.block_until_ready`` on the
result, or it measures only the dispatch: :meth:`Stopwatch.block` does that inside the timed
block. Compilations are counted with ``jax.monitoring``'s public event
``/jax/core/compile/backend_compile_duration``, recorded once each time a jitted function's
in-memory cache misses and the program goes to the backend (compiled, or read back from the
persistent compilation cache); in-memory cache hits record nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["COMPILE_EVENT", "Stopwatch", "stopwatch", "timed", "Compilations", "count_compilations"]

T = TypeVar("T")

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class Stopwatch:
    """Wall-clock seconds of a ``with stopwatch()`` block: ``.seconds`` runs while inside the
    block and is fixed when it ends."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._end: float | None = None

    @property
    def seconds(self) -> float:
        end = time.perf_counter() if self._end is None else self._end
        return end - self._start

    def block(self, result: T) -> T:
        """Waits until the JAX arrays in ``result`` (any pytree) are computed; returns it."""
        import jax

        return jax.block_until_ready(result)

    def _stop(self) -> None:
        self._end = time.perf_counter()


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Times the ``with`` block::

        with stopwatch() as sw:
            out = sw.block(fn(x))  # wait for the result, inside the timed block
        print(sw.seconds)
    """
    sw = Stopwatch()
    try:
        yield sw
    finally:
        sw._stop()


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``(fn(*args, **kwargs), wall seconds)``, waiting for the JAX arrays in the result."""
    with stopwatch() as sw:
        out = sw.block(fn(*args, **kwargs))
    return out, sw.seconds


class Compilations:
    """Compilations seen while a ``with count_compilations()`` block runs: ``.count``, and
    ``.names`` (JAX's names for them, such as ``jit(unroll)``)."""

    def __init__(self, fun_name: str | None) -> None:
        self.fun_name = fun_name
        self.names: list[str] = []

    @property
    def count(self) -> int:
        return len(self.names)

    def _record(self, name: str) -> None:
        if self.fun_name is None or name == self.fun_name:
            self.names.append(name)


_active: list[Compilations] = []
_lock = threading.Lock()
_listening = [False]


def _listen(event: str, _duration: float, **kwargs: Any) -> None:
    if event != COMPILE_EVENT:
        return
    name = str(kwargs.get("fun_name", ""))
    with _lock:
        for counter in _active:
            counter._record(name)


@contextmanager
def count_compilations(fn: Callable | str | None = None) -> Iterator[Compilations]:
    """Counts XLA compilations in this process while the ``with`` block runs::

        with count_compilations(solver._solve) as c:
            ...
        assert c.count == 1

    ``fn``: only the compilations of this jitted function (JAX names them ``jit(<__name__>)``),
    or of the program of that name when a string; ``None``: every compilation, including the
    small programs of eager operations.
    """
    import jax

    if fn is not None and not isinstance(fn, str):
        fn = f"jit({fn.__name__})"
    counter = Compilations(fn)
    with _lock:
        if not _listening[0]:
            jax.monitoring.register_event_duration_secs_listener(_listen)
            _listening[0] = True
        _active.append(counter)
    try:
        yield counter
    finally:
        with _lock:
            _active.remove(counter)
