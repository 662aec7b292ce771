"""JAX's persistent compilation cache, switched on for the library and the command line.

A compiled program is stored on disk, keyed by the program and the JAX version, so a second
process that stylises an image of a size seen before loads it instead of compiling again.

Where it goes, first match wins:

* ``FLEXSOLVER_CACHE_DIR`` in the environment: that folder; the values ``""``, ``0``, ``off``
  and ``none`` switch the cache off;
* a cache folder the user already gave JAX (``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config.update("jax_compilation_cache_dir", ...)``) is left as it is;
* otherwise ``$XDG_CACHE_HOME/flexsolver/jax`` (default ``~/.cache/flexsolver/jax``).

A folder that cannot be created or written switches the cache off, silently: caching is an
optimisation, never a reason to fail.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ENV = "FLEXSOLVER_CACHE_DIR"
_OFF = ("", "0", "off", "none", "false")
MIN_COMPILE_TIME_S = 0.5


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/flexsolver/jax``, or ``~/.cache/flexsolver/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flexsolver" / "jax"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            pass
        return True
    except OSError:
        return False


def enable_compilation_cache(folder: str | os.PathLike[str] | None = None) -> Path | None:
    """Points JAX's persistent compilation cache at ``folder`` (default: see the module doc).

    Returns the folder in use, or ``None`` when the cache is off (switched off by the
    environment, or the folder is not writable). Programs that compile in under
    :data:`MIN_COMPILE_TIME_S` are not stored (they are cheaper to compile than to read back),
    unless ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says otherwise.
    """
    import jax

    if folder is None:
        env = os.environ.get(ENV)
        if env is not None:
            if env.strip().lower() in _OFF:
                return None
            folder = env
        elif jax.config.jax_compilation_cache_dir:
            return Path(jax.config.jax_compilation_cache_dir)  # the user's own setting wins
        else:
            folder = default_cache_dir()
    path = Path(folder).expanduser()
    if not _writable(path):
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:  # the user's own setting wins
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    return path
