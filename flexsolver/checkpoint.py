"""Checkpoints with orbax: training state in a workdir, exported solvers, ``load_checkpoint``.

Layouts (all written by orbax):

* training workdir ``W``: ``W/checkpoints/<step>/{params,opt_state,config}`` via orbax's
  ``CheckpointManager`` (``config`` = the training config as JSON);
* exported solver ``E``: ``E/{params,config}`` — parameters only (optionally stored in
  bfloat16 to halve the size), what ships with the package and what Colab restores.

``load_checkpoint(path)`` accepts either and needs nothing but the path: the config stored beside
the parameters gives ``n`` and ``l``, from which the parameter structure is rebuilt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from flexsolver.network import Solver, init_params
from flexsolver.shipped import shipped_checkpoint

CHECKPOINTS = "checkpoints"


class CheckpointError(ValueError):
    """A path that holds no usable flexsolver checkpoint."""


def abstract_params(n: int, l: int) -> Any:
    """Shapes and dtypes of an ``(n, l)`` solver's parameter dict, without allocating them."""
    return jax.eval_shape(lambda: init_params(jax.random.PRNGKey(0), n=n, l=l).params)


def _restore_params(directory: Path, config: dict, dtype: str) -> Any:
    target = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, jnp.dtype(dtype)), abstract_params(config["n"], config["l"])
    )
    with ocp.StandardCheckpointer() as ckptr:
        _check_shapes(ckptr.metadata(directory), target, config)
        params = ckptr.restore(directory, target)
    # Converted on the host: an eager jnp conversion would compile one program per shape.
    return jax.tree.map(lambda a: jax.device_put(np.asarray(a).astype(np.float32)), params)


def _check_shapes(metadata: Any, target: Any, config: dict) -> None:
    """Orbax restores into a target of other shapes without complaint (it pads or slices), so the
    stored tree is compared with the one ``config`` describes before restoring."""
    stored = getattr(metadata, "item_metadata", metadata)
    stored_shapes = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in
                     jax.tree_util.tree_flatten_with_path(stored, is_leaf=lambda x: hasattr(x, "shape"))[0]}
    wanted = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree_util.tree_flatten_with_path(target)[0]}
    if stored_shapes != wanted:
        bad = sorted(set(stored_shapes) ^ set(wanted)) or sorted(k for k in wanted if stored_shapes[k] != wanted[k])
        key = bad[0]
        raise ValueError(
            f"parameters do not match the config (n={config['n']}, l={config['l']}): {key} is "
            f"{stored_shapes.get(key, 'missing')} in the checkpoint, {wanted.get(key, 'absent')} expected"
        )


def _read_json(path: Path) -> dict:
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as ckptr:
        return dict(ckptr.restore(path))


def export_params(directory: str | Path, params: Any, config: dict, dtype: str = "float32") -> Path:
    """Writes a parameters-only checkpoint (``dtype`` ``"float32"`` or ``"bfloat16"``) of a
    :class:`Solver` (whose ``n``, ``l`` and gate go into ``config``) or a bare parameter dict."""
    if isinstance(params, Solver):
        config = {**config, "n": params.n, "l": params.l, "nonlinearity": params.nonlinearity}
        params = params.params
    directory = Path(directory).absolute()
    if directory.exists():
        raise CheckpointError(f"{directory} already exists; choose a new folder")
    directory.mkdir(parents=True)
    config = {**config, "params_dtype": dtype}
    params = jax.tree.map(lambda a: np.asarray(a).astype(jnp.dtype(dtype)), params)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(directory / "params", params)
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as ckptr:
        ckptr.save(directory / "config", config)
    return directory


def _latest_step_dir(workdir: Path) -> Path | None:
    root = workdir / CHECKPOINTS
    if not root.is_dir():
        return None
    steps = sorted((int(p.name), p) for p in root.iterdir() if p.name.isdigit() and _is_solver_dir(p))
    return steps[-1][1] if steps else None


def _is_solver_dir(path: Path) -> bool:
    return (path / "params").is_dir() and (path / "config").is_dir()


def load_checkpoint(path: str | Path | None = None) -> tuple[Solver, dict]:
    """Returns ``(solver, config)`` from a training workdir (its latest step), one step folder of
    it, or an exported solver folder. With no ``path``, the solver shipped with the package.
    ``solver`` is a :class:`Solver`: the parameters with ``n``, ``l`` and the gate of ``config``.
    """
    if path is None:
        path = shipped_checkpoint()
    path = Path(path).absolute()
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    directory = path if _is_solver_dir(path) else _latest_step_dir(path)
    if directory is None:
        raise CheckpointError(
            f"{path} holds no flexsolver checkpoint (expected a training workdir with "
            f"{CHECKPOINTS}/<step>/ or an exported folder with params/ and config/)"
        )
    try:
        config = _read_json(directory / "config")
        if not {"n", "l"} <= set(config):
            raise CheckpointError(f"{directory}: config without n and l, not a flexsolver checkpoint")
        params = _restore_params(directory / "params", config, config.get("params_dtype", "float32"))
        solver = Solver(params, n=int(config["n"]), l=int(config["l"]), nonlinearity=config.get("nonlinearity", "heaviside"))
    except CheckpointError:
        raise
    except Exception as e:  # orbax raises many types for corrupt or incompatible data
        text = str(e).strip()
        first = text.splitlines()[0] if text else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {directory}: {first[:300]}") from None
    return solver, config


def load_solver(checkpoint: str | Path | None = None, random: bool = False, on_fallback=None) -> tuple[Solver, str]:
    """``(solver, description)`` of the solver a command or an experiment runs: ``checkpoint``
    (default: the shipped one), or random parameters with ``random=True`` (shows the mechanics
    only). With no checkpoint given and none shipped, falls back to random parameters and calls
    ``on_fallback(message)`` (e.g. a warning printer)."""
    if not random:
        try:
            solver, config = load_checkpoint(checkpoint)
            return solver, f"checkpoint n={config['n']} l={config['l']}"
        except CheckpointError as e:
            if checkpoint is not None:
                raise
            if on_fallback is not None:
                on_fallback(f"{e}; using random parameters")
    return init_params(jax.random.PRNGKey(0), n=4, l=32), "random parameters"
