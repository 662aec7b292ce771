"""The persistent compilation cache: a second process loads what the first compiled."""

import os
import subprocess
import sys

import pytest

from flexsolver import cache

SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.WARNING)
logging.getLogger("jax._src.compiler").setLevel(logging.DEBUG)
import jax, jax.numpy as jnp
import flexsolver
print("DIR", jax.config.jax_compilation_cache_dir)
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())
print("VALUE", float(f(jnp.arange(12.0).reshape(3, 4) / 10)))
"""


def _run(env_extra):
    env = {**os.environ, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", **env_extra}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


def test_second_process_hits_the_cache(tmp_path):
    folder = tmp_path / "jaxcache"
    out1, err1 = _run({cache.ENV: str(folder)})
    assert f"DIR {folder}" in out1
    entries = sorted(p.name for p in folder.iterdir())
    assert entries, "the first process stored nothing"
    assert "cache hit" not in err1.lower()
    out2, err2 = _run({cache.ENV: str(folder)})
    assert "persistent compilation cache hit" in err2.lower()
    assert out2.splitlines()[-1] == out1.splitlines()[-1]  # same value
    assert sorted(p.name for p in folder.iterdir()) == entries  # nothing compiled anew


@pytest.mark.parametrize("value", ["off", "0", ""])
def test_switched_off_by_the_environment(value, monkeypatch):
    monkeypatch.setenv(cache.ENV, value)
    assert cache.enable_compilation_cache() is None


def test_unwritable_folder_switches_it_off(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cache.ENV, str(blocker / "sub"))
    assert cache.enable_compilation_cache() is None


def test_default_folder_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.default_cache_dir() == tmp_path / "flexsolver" / "jax"
