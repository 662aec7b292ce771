"""End-to-end: ``python -m experiments.evaluate`` on tiny images (random solver parameters, exported)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from PIL import Image

import flexsolver as fs
from experiments import evaluate as ev
from flexsolver.checkpoint import abstract_params, export_params
from flexsolver.images import load_image
from tests.helpers import sample_image

PAD = 4  # image_grid's default padding
SIZE = 32
METHODS = ["content", "ours", "adain", "gatys3"]


def _save(folder, name, size):
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.png"
    Image.fromarray((sample_image(name, size) * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    # two contents of the same shape (fewer compilations), styles of two shapes
    _save(root / "content", "astronaut", (24, 32))
    _save(root / "content", "chelsea", (24, 32))
    _save(root / "style", "coffee", (32, 32))
    _save(root / "style", "rocket", (20, 32))
    (root / "style" / "notes.txt").write_text("not an image")
    # small random parameters of the right structure (fs.init_params compiles for ~25 s on a busy CPU)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda a: rng.uniform(-0.05, 0.05, a.shape).astype(np.float32), abstract_params(1, 4))
    ckpt = export_params(root / "ckpt", params, {"n": 1, "l": 4})
    return root, ckpt


def _args(root, ckpt, out, *extra, methods=METHODS):
    return ["--checkpoint", str(ckpt), "--content", str(root / "content"), "--style", str(root / "style"),
            "--size", str(SIZE), "--methods", ",".join(methods), "--out", str(out), *extra]  # fmt: skip


def test_pairs_and_methods():
    all_pairs = ev.pairs("abc", "xyz", None, seed=0)
    assert sorted(all_pairs) == [(c, s) for c in "abc" for s in "xyz"]
    for contents, styles in (("abc", "wxyz"), ("abcd", "xyz")):
        got = ev.pairs(contents, styles, None, seed=3)
        assert sorted(got) == [(c, s) for c in contents for s in styles]
        # every 3 consecutive pairs: 3 distinct contents and 3 distinct styles
        for k in range(0, len(got), 3):
            assert len({c for c, _ in got[k : k + 3]}) == len({s for _, s in got[k : k + 3]}) == 3
    assert ev.pairs("abc", "xyz", 4, seed=0) == all_pairs[:4]  # a larger limit extends a smaller one
    assert ev.pairs("abc", "xyz", None, seed=1) != all_pairs
    assert ev.parse_methods("content, ours,gatys5") == ["content", "ours", "gatys5"]
    assert ev.gatys_steps("gatys300") == 300 and ev.gatys_steps("gatys0") is None
    for bad in ("ours,vgg", "gatys", "gatys0", "ours,ours", ""):
        with pytest.raises(ValueError):
            ev.parse_methods(bad)


def test_summarise_and_table():
    recs = [
        {"content": "a", "style": "x", "method": "adain", "ltv": 0.3, "seconds": 2.0},
        {"content": "b", "style": "x", "method": "adain", "ltv": 0.2, "seconds": 2.0},
        {"content": "a", "style": "x", "method": "ours", "ltv": 0.25, "seconds": 1.0},
        {"content": "b", "style": "x", "method": "ours", "ltv": 0.35, "seconds": 3.0},
        {"content": "c", "style": "x", "method": "ours", "ltv": 9.0, "seconds": 9.0},  # not selected
    ]
    rows = ev.summarise(recs, ["ours", "adain"], [("a", "x"), ("b", "x")])
    ours, adain = rows
    assert ours["pairs"] == 2 and ours["ltv_mean"] == pytest.approx(0.3) and ours["ltv_std"] == pytest.approx(0.05)
    assert ours["vs_adain"] == pytest.approx(1.0) and ours["beats_adain"] == (1, 2)
    assert adain["beats_adain"] is None
    table = ev.markdown_table(rows)
    assert "| ours | 2 | 0.3000 ± 0.0500 | 0.3000 | 2.000 | 1.00 | 1/2 |" in table


@pytest.mark.slow
def test_evaluate_end_to_end(setup, tmp_path, capsys, vgg):
    root, ckpt = setup
    out = tmp_path / "eval"
    ev.main(_args(root, ckpt, out, "--limit", "3"))
    printed = capsys.readouterr().out
    lines = (out / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3 * len(METHODS)
    selected = ev.pairs(["astronaut.png", "chelsea.png"], ["coffee.png", "rocket.png"], 3, 0)
    assert {(r["content"], r["style"]) for r in records} == set(selected)
    by = {(r["content"], r["style"], r["method"]): r for r in records}
    for c, s in selected:
        x_c = load_image(root / "content" / c, max_side=SIZE)
        grams = fs.style_grams(vgg, load_image(root / "style" / s, max_side=SIZE))
        content = by[(c, s, "content")]
        assert content["ltv"] == pytest.approx(float(fs.ltv(vgg, x_c, x_c, grams)), rel=1e-6)
        assert content["seconds"] < 0.01
        assert by[(c, s, "gatys3")]["ltv"] < content["ltv"]
        assert all(by[(c, s, m)]["seconds"] > 0 for m in METHODS[1:])
    table = (out / "results.md").read_text()
    assert "size 32 (longest side): 3 pairs" in table
    for m in METHODS:
        assert f"| {m} | 3 |" in table and f"| {m} | 3 |" in printed
    grid = np.asarray(Image.open(out / "grid.png"))
    # 3 rows of content height 24; columns: content, style (at height 24), 3 outputs
    assert grid.shape[0] == 3 * 24 + 4 * PAD
    assert grid.shape[1] >= 32 * 4 + 6 * PAD

    # a second run does nothing new; a larger limit only adds the new pair
    ev.main(_args(root, ckpt, out, "--limit", "3"))
    assert (out / "results.jsonl").read_text().splitlines() == lines
    assert "checkpoint n=1 l=4" in (out / "results.md").read_text()  # still named, though not loaded
    ev.main(_args(root, ckpt, out, methods=["content"]))
    assert len((out / "results.jsonl").read_text().splitlines()) == len(lines) + 1
    capsys.readouterr()

    # results of another size are not mixed into this folder
    with pytest.raises(SystemExit) as e:
        ev.main(_args(root, ckpt, out, "--size", "48"))
    assert e.value.code == 2 and "another --out" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        (("--content", "missing"), "does not exist"),
        (("--style", "empty"), "no images"),
        (("--methods", "content,wct"), "unknown method"),
        (("--size", "8"), "--size"),
        (("--checkpoint", "nockpt"), "checkpoint"),
    ],
)
def test_bad_inputs(setup, tmp_path, capsys, change, message):
    root, ckpt = setup
    (tmp_path / "empty").mkdir()
    args = _args(root, ckpt, tmp_path / "out", methods=["ours"])
    flag, value = change
    args[args.index(flag) + 1] = value if flag in ("--methods", "--size") else str(tmp_path / value)
    with pytest.raises(SystemExit) as e:
        ev.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "config.json").exists()


def test_square_images_are_centre_crops_at_size(tmp_path):
    x = np.zeros((40, 80, 3), np.uint8)
    x[:, 20:60] = 255  # the centre square is white, the sides black
    path = tmp_path / "wide.png"
    Image.fromarray(x).save(path)
    sq = ev.load_eval_image(path, 32, square=True)
    assert sq.shape == (32, 32, 3) and sq.min() > 0.99
    assert ev.load_eval_image(path, 32, square=False).shape == (16, 32, 3)
