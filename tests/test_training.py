"""Training: the loss goes down, resume is bit-identical, 2 devices = 1 device, checkpoints load."""

import dataclasses
import json
from functools import partial

import jax
import numpy as np
import optax
import pytest
from PIL import Image

import flexsolver as fs
from flexsolver.checkpoint import CheckpointError, export_params, load_checkpoint
from flexsolver.training import (
    AXIS, ema_params, loss_fn, make_optimizer, make_train_step, replicate, shard, train_step, unreplicate,
)
from flexsolver.config import ModelConfig, TrainConfig
from tests.helpers import sample_image

TINY = TrainConfig(model=ModelConfig(n=2, l=8), size=32, batch=2, steps=4, lr=1e-3, seed=3, save_every=2, keep=5, eval_every=0, log_every=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray((sample_image(name) * 255).astype(np.uint8)).save(root / f"{name}.png")
    return f"folder:{root}"


def fixed_batch(size=32, b=2):
    x_c = np.stack([sample_image("astronaut", (size, size)), sample_image("rocket", (size, size))])[:b]
    x_s = np.stack([sample_image("coffee", (size, size)), sample_image("chelsea", (size, size))])[:b]
    return {"x_c": x_c, "x_s": x_s, "betas": np.full((b, 5), 1 / 0.9, np.float32)}


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(vgg):
    # The same step program as TINY's runs below (all local devices, lr 1e-3): compiled once.
    devices = jax.local_devices()
    params = fs.init_params(jax.random.PRNGKey(0), n=TINY.model.n, l=TINY.model.l)
    step = make_train_step(TINY.lr, TINY.clip_grad_norm, TINY.model.nonlinearity)
    opt_state = make_optimizer(TINY.lr).init(params)
    params, opt_state = replicate(params, devices), replicate(opt_state, devices)
    batch = shard(fixed_batch(), len(devices))
    losses = []
    for _ in range(6):
        params, opt_state, metrics = step(params, opt_state, vgg, batch)
        losses.append(float(metrics["loss"][0]))
    assert losses[-1] < 0.95 * losses[0], losses


def test_two_devices_give_the_same_update_as_one(vgg):
    """Data parallelism: the pmean of per-device gradients is the gradient of the global batch.
    Plain SGD (lr 1) makes the parameter change equal that gradient (Adam's first step would be
    ``lr·sign(g)`` and amplify rounding)."""
    devices = jax.local_devices()
    if len(devices) < 2:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=2")
    params = fs.init_params(jax.random.PRNGKey(1), n=2, l=8)
    sgd = optax.sgd(1.0)
    batch = fixed_batch()
    results = []
    for devs in (devices[:1], devices[:2]):
        step = jax.pmap(
            partial(train_step, optimizer=sgd, nonlinearity="heaviside"),
            axis_name=AXIS, in_axes=(0, 0, None, 0), devices=devs,
        )
        p, s = replicate(params, devs), replicate(sgd.init(params), devs)
        p, s, metrics = step(p, s, vgg, shard(batch, len(devs)))
        results.append((unreplicate(p), float(metrics["loss"][0])))
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5)
    changes = [jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), r[0], params) for r in results]
    for a, b in zip(jax.tree.leaves(changes[0]), jax.tree.leaves(changes[1])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * float(np.abs(a).max()) + 1e-9)
    assert max(float(np.abs(a).max()) for a in jax.tree.leaves(changes[0])) > 0


def test_loss_is_the_sum_over_iterations_of_ltv(vgg):
    params = fs.init_params(jax.random.PRNGKey(2), n=2, l=8)
    batch = fixed_batch()
    total, per_t = jax.jit(loss_fn, static_argnums=3)(params, vgg, batch, "heaviside")
    outs = fs.solve(params, batch["x_c"], fs.style_grams(vgg, batch["x_s"]), return_all=True,
                    style_weights={k: batch["betas"][:, i] for i, k in enumerate(fs.STYLE_LAYERS)})
    grams = fs.style_grams(vgg, batch["x_s"])
    # betas are 1/0.9 on every layer: LTV with those weights
    expected = [float(np.mean(fs.ltv(vgg, o, batch["x_c"], grams, {k: 1 / 0.9 for k in fs.STYLE_LAYERS}))) for o in outs]
    np.testing.assert_allclose(per_t, expected, rtol=1e-4)
    np.testing.assert_allclose(total, sum(expected), rtol=1e-4)


def test_interrupt_and_resume_is_bit_identical(folder, tmp_path):
    from flexsolver.trainer import train

    config = dataclasses.replace(TINY, data=folder)
    train(config, tmp_path / "straight", progress=False)
    # "Interrupted" after 2 steps, then the same command again.
    train(dataclasses.replace(config, steps=2), tmp_path / "resumed", progress=False)
    train(config, tmp_path / "resumed", progress=False)
    straight, cfg = load_checkpoint(tmp_path / "straight")
    resumed, _ = load_checkpoint(tmp_path / "resumed")
    assert cfg["n"] == TINY.model.n and cfg["l"] == TINY.model.l
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(a, b)
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4  # steps 1, 2 then 3, 4: nothing redone
    # and training changed the parameters
    init = fs.init_params(jax.random.PRNGKey(config.seed), TINY.model.n, TINY.model.l)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(straight)))


def test_the_best_validated_solver_is_exported(folder, tmp_path):
    from flexsolver.trainer import BEST, train

    config = dataclasses.replace(TINY, data=folder, eval_every=1, eval_pairs=2)
    train(dataclasses.replace(config, steps=2), tmp_path, progress=False)  # interrupted, then resumed
    train(config, tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val_ltv"] for r in records if "val_ltv" in r}
    assert sorted(val) == [1, 2, 3, 4]
    best_step = min(val, key=val.get)
    solver, config_best = load_checkpoint(tmp_path / BEST)
    assert (config_best["step"], config_best["val_ltv"]) == (best_step, val[best_step])
    assert config_best["params_dtype"] == "bfloat16" and config_best["n"] == TINY.model.n
    full, _ = load_checkpoint(tmp_path / "checkpoints" / str(best_step))
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(solver)):
        np.testing.assert_allclose(b, a, rtol=1e-2, atol=1e-6)
    assert (tmp_path / BEST / "metrics.jsonl").is_file() and not (tmp_path / f"{BEST}.new").exists()


def test_export_and_load_checkpoint(tmp_path):
    params = fs.init_params(jax.random.PRNGKey(4), n=1, l=4)
    export_params(tmp_path / "f32", params, {"n": 1, "l": 4, "nonlinearity": "heaviside"})
    loaded, config = load_checkpoint(tmp_path / "f32")
    assert config["l"] == 4
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(a, b)
    export_params(tmp_path / "bf16", params, {"n": 1, "l": 4}, dtype="bfloat16")
    half, _ = load_checkpoint(tmp_path / "bf16")
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(half)):
        assert b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-6)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no flexsolver checkpoint"):
        load_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError):
        export_params(tmp_path / "f32", params, {"n": 1, "l": 4})


def test_params_ema_is_optax_incremental_update_of_each_new_state():
    params = {"w": np.array([1.0, -2.0], np.float32)}
    optimizer = make_optimizer(0.1, ema_decay=0.9)
    state = optimizer.init(params)
    expected = params
    for k in range(3):
        grads = {"w": np.array([0.5 * (k + 1), -1.0], np.float32)}
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        expected = optax.incremental_update(params, expected, 0.1)
    np.testing.assert_allclose(ema_params(state)["w"], expected["w"], rtol=1e-6)
    assert ema_params(make_optimizer(0.1).init(params)) is None


def test_the_pair_loss_cap_weighs_pairs_by_their_contents_loss(vgg):
    params = fs.init_params(jax.random.PRNGKey(2), n=2, l=8)
    batch = fixed_batch()
    grams = fs.style_grams(vgg, batch["x_s"])
    weights = {k: batch["betas"][:, i] for i, k in enumerate(fs.STYLE_LAYERS)}
    content_ltv = np.asarray(fs.ltv(vgg, batch["x_c"], batch["x_c"], grams, weights))
    outs = fs.solve(params, batch["x_c"], grams, return_all=True, style_weights=weights)
    per_pair = sum(np.asarray(fs.ltv(vgg, o, batch["x_c"], grams, weights)) for o in outs)
    cap = float(np.mean(content_ltv))  # between the two pairs' losses: one is weighed down
    assert content_ltv.min() < cap < content_ltv.max()
    total, per_t = jax.jit(loss_fn, static_argnums=(3, 4))(params, vgg, batch, "heaviside", cap)
    np.testing.assert_allclose(total, np.mean(np.minimum(1.0, cap / content_ltv) * per_pair), rtol=1e-4)
    uncapped, per_t_uncapped = jax.jit(loss_fn, static_argnums=3)(params, vgg, batch, "heaviside")
    np.testing.assert_allclose(per_t, per_t_uncapped, rtol=1e-5)  # the logged LTVs stay unweighted
    assert float(total) < float(uncapped)


def test_a_run_with_averaged_parameters_validates_and_exports_the_better(folder, tmp_path):
    from flexsolver.trainer import BEST, train

    config = dataclasses.replace(TINY, data=folder, eval_every=1, eval_pairs=2, ema_decay=0.5, pair_loss_cap=1.0)
    train(dataclasses.replace(config, steps=2), tmp_path / "resumed", progress=False)
    train(config, tmp_path / "resumed", progress=False)
    train(config, tmp_path / "straight", progress=False)
    records = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    scores = [(r[key], r["step"], key == "val_ltv_ema") for r in records for key in ("val_ltv", "val_ltv_ema") if key in r]
    assert len(scores) == 8
    _, config_best = load_checkpoint(tmp_path / "resumed" / BEST)
    assert (config_best["val_ltv"], config_best["step"], config_best["averaged"]) == min(scores)
    assert config_best["ema_decay"] == 0.5 and config_best["pair_loss_cap"] == 1.0
    straight = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    # the average is optimiser state: resumed, it goes on exactly as in the uninterrupted run
    assert [r.get("val_ltv_ema") for r in straight] == [r.get("val_ltv_ema") for r in records]


def test_the_loss_on_the_last_iterate_only(vgg):
    params = fs.init_params(jax.random.PRNGKey(2), n=2, l=8)
    batch = fixed_batch()
    total, per_t = jax.jit(loss_fn, static_argnums=(3, 4, 5))(params, vgg, batch, "heaviside", 0.0, True)
    grams = fs.style_grams(vgg, batch["x_s"])
    weights = {k: batch["betas"][:, i] for i, k in enumerate(fs.STYLE_LAYERS)}
    out = fs.solve(params, batch["x_c"], grams, style_weights=weights)
    expected = float(np.mean(fs.ltv(vgg, out, batch["x_c"], grams, weights)))
    np.testing.assert_allclose(total, expected, rtol=1e-4)
    assert per_t.shape == (1,)
