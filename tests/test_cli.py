"""The ``flexsolver`` command end to end on small images: success paths, and each bad input giving
one ``error:`` line on stderr, exit code 2 and no output file."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

import flexsolver as fs
from flexsolver import cli, inputs
from flexsolver.checkpoint import export_params
from flexsolver.color import rgb_to_ycbcr
from tests.helpers import sample_image

H, W = 48, 64


def _save(path, x):
    Image.fromarray((np.clip(x, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    params = fs.init_params(jax.random.PRNGKey(3), n=1, l=4, output_scale=2.0)  # visible changes
    ckpt = export_params(root / "ckpt", params, {"n": 1, "l": 4, "nonlinearity": "heaviside"})
    left = np.zeros((H, W), np.float32)
    left[:, : W // 2] = 1
    return {
        "root": root,
        "ckpt": str(ckpt),
        "content": _save(root / "content.png", sample_image("astronaut", (H, W))),
        "style": _save(root / "style.png", sample_image("coffee", (40, 40))),
        "style2": _save(root / "style2.jpg", sample_image("chelsea", (40, 56))),
        "left": _save(root / "left.png", left),
        "right": _save(root / "right.png", 1 - left),
        "small_mask": _save(root / "small.png", left[:20, :20]),
    }


def run(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``flexsolver ARGV`` run in this process."""
    try:
        cli.main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def stylize(files, tmp_path, capsys, *extra, name="out.png"):
    out = tmp_path / name
    code, stdout, stderr = run(["stylize", files["content"], files["style"], "-o", str(out),
                                "--checkpoint", files["ckpt"], *extra], capsys)
    return code, out, stdout, stderr


def test_stylize_writes_image_of_content_size(files, tmp_path, capsys):
    code, out, stdout, _ = stylize(files, tmp_path, capsys)
    assert code == 0 and "wrote" in stdout
    y = np.asarray(Image.open(out), np.float32) / 255
    assert y.shape == (H, W, 3)
    x_c = np.asarray(Image.open(files["content"]), np.float32) / 255
    assert np.abs(y - x_c).mean() > 0.01  # the solver changed the image
    # intensity 0 switches every style term off: the solver leaves the content as it is
    code, out0, _, _ = stylize(files, tmp_path, capsys, "--intensity", "0", name="zero.png")
    assert code == 0
    np.testing.assert_allclose(np.asarray(Image.open(out0), np.float32) / 255, x_c, atol=1 / 255 + 1e-6)


def test_stylize_matches_library_call(files, tmp_path, capsys, vgg):
    code, out, _, _ = stylize(files, tmp_path, capsys, "--scales", "conv1_1,conv3_1", "--intensity", "0.5")
    assert code == 0
    params, _ = fs.load_checkpoint(files["ckpt"])
    x_c = fs.images.load_image(files["content"])
    x_s = fs.images.load_image(files["style"])
    weights = {n: (0.5 if n in ("conv1_1", "conv3_1") else 0.0) for n in fs.STYLE_LAYERS}
    ref = np.clip(np.asarray(fs.solve(params, x_c, fs.style_grams(vgg, x_s), style_weights=weights)), 0, 1)
    got = np.asarray(Image.open(out), np.float32) / 255
    np.testing.assert_allclose(got, ref, atol=1 / 255 + 1e-5)


def test_mixing_masks_photo_and_preserve_color(files, tmp_path, capsys):
    two = [files["content"], files["style"], files["style2"]]
    ck = ["--checkpoint", files["ckpt"]]
    assert run(["stylize", *two, "-o", str(tmp_path / "mix.png"), "--weights", "0.3", "0.7", *ck], capsys)[0] == 0
    assert run(["stylize", *two, "-o", str(tmp_path / "mask.png"), "--mask", files["left"], "--mask",
                files["right"], *ck], capsys)[0] == 0
    assert run(["stylize", files["content"], files["style"], "-o", str(tmp_path / "photo.png"), "--photo",
                "--lam", "10", *ck], capsys)[0] == 0
    code, out, _, _ = stylize(files, tmp_path, capsys, "--preserve-color", name="colour.png")
    assert code == 0
    for name in ("mix.png", "mask.png", "photo.png"):
        assert np.asarray(Image.open(tmp_path / name)).shape == (H, W, 3)
    # luminance-only transfer keeps the content's chroma (up to clipping and 8-bit rounding)
    chroma = lambda p: np.asarray(rgb_to_ycbcr(np.asarray(Image.open(p), np.float32) / 255))[..., 1:]  # noqa: E731
    plain = tmp_path / "out.png"
    stylize(files, tmp_path, capsys)
    assert np.abs(chroma(out) - chroma(files["content"])).mean() < 0.01
    assert np.abs(chroma(out) - chroma(files["content"])).mean() < np.abs(chroma(plain) - chroma(files["content"])).mean()


def test_folder_of_contents_skips_bad_files_and_keeps_the_rest(files, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    _save(folder / "a.png", sample_image("astronaut", (H, W)))
    _save(folder / "b.jpg", sample_image("rocket", (H, W)))
    (folder / "notes.txt").write_text("not an image, ignored")
    out = tmp_path / "styled"
    code, _, stderr = run(["stylize", str(folder), files["style"], "-o", str(out), "--checkpoint", files["ckpt"],
                           "--format", "jpg"], capsys)
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg"]
    (folder / "c.png").write_bytes(b"\x89PNG broken")
    code, _, stderr = run(["stylize", str(folder), files["style"], "-o", str(tmp_path / "styled2"),
                           "--checkpoint", files["ckpt"], "-q"], capsys)
    assert code == 1 and "c.png" in stderr
    assert sorted(p.name for p in (tmp_path / "styled2").iterdir()) == ["a.png", "b.png"]


def test_large_content_is_downscaled_with_a_warning(files, tmp_path, capsys, monkeypatch):
    big = _save(tmp_path / "big.png", sample_image("astronaut", (96, 128)))
    out = tmp_path / "big_out.png"
    code, _, stderr = run(["stylize", big, files["style"], "-o", str(out), "--checkpoint", files["ckpt"],
                           "--max-side", str(W)], capsys)
    assert code == 0 and "downscaled to 64×48" in stderr
    assert Image.open(out).size == (W, H)
    # with --max-side 0 the cap comes from the available memory
    monkeypatch.setattr(inputs, "available_memory", lambda: int(H * W * inputs.BYTES_PER_PIXEL / inputs.MEMORY_HEADROOM))
    code, _, stderr = run(["stylize", big, files["style"], "-o", str(out), "--checkpoint", files["ckpt"],
                           "--max-side", "0"], capsys)
    assert code == 0 and "more memory than available" in stderr
    assert Image.open(out).size == (W, H)


def test_memory_cap_of_a_4096_square_on_24_gib():
    side = inputs.memory_max_side((4096, 4096), photo=False, memory=24 * 2**30)
    assert inputs.DEFAULT_MAX_SIDE <= side < 4096
    assert inputs.memory_max_side((4096, 4096), photo=True, memory=24 * 2**30) < side


def test_bad_inputs_one_line_exit_2_no_output(files, tmp_path, capsys):
    text = tmp_path / "style.jpg"
    text.write_text("this is not a picture")
    (tmp_path / "empty_ckpt").mkdir()
    corrupt = tmp_path / "corrupt"
    export_params(corrupt, fs.init_params(jax.random.PRNGKey(0), n=1, l=4).params, {"n": 1, "l": 8})  # wrong shapes
    c, s, s2 = files["content"], files["style"], files["style2"]
    ck = ["--checkpoint", files["ckpt"]]
    cases = {
        "missing content": ([str(tmp_path / "nope.png"), s], "does not exist"),
        "style not an image": ([c, str(text)], "cannot read image"),
        "missing style": ([c, str(tmp_path / "nope.jpg")], "nope.jpg"),
        "weights not summing to 1": ([c, s, s2, "--weights", "0.5", "0.6"], "sum to 1"),
        "weights count": ([c, s, s2, "--weights", "1"], "one weight per style"),
        "mask count": ([c, s, s2, "--mask", files["left"]], "one mask per style"),
        "mask size": ([c, s, s2, "--mask", files["small_mask"], "--mask", files["right"]], "content's size"),
        "weights and masks": ([c, s, s2, "--weights", "0.5", "0.5", "--mask", files["left"], "--mask",
                               files["right"]], "not both"),
        "unknown scale": ([c, s, "--scales", "conv9_9"], "unknown style scales"),
        "negative intensity": ([c, s, "--intensity", "-1"], "intensity"),
    }
    for what, (args, message) in cases.items():
        out = tmp_path / "out.png"
        code, stdout, stderr = run(["stylize", *args, "-o", str(out), *ck], capsys)
        assert code == 2, what
        assert stderr.startswith("error:") and stderr.count("\n") == 1 and message in stderr, (what, stderr)
        assert not out.exists(), what
    for what, ckpt, message in (("not a checkpoint", tmp_path / "empty_ckpt", "no flexsolver checkpoint"),
                                ("incompatible", corrupt, "cannot read checkpoint"),
                                ("missing", tmp_path / "none", "does not exist")):
        code, _, stderr = run(["stylize", c, s, "-o", str(tmp_path / "out.png"), "--checkpoint", str(ckpt)], capsys)
        assert code == 2 and stderr.startswith("error:") and message in stderr and stderr.count("\n") == 1, what
        assert not (tmp_path / "out.png").exists()
    code, _, stderr = run(["stylize", c, s, "-o", str(tmp_path / "missing" / "out.png"), *ck], capsys)
    assert code == 2 and "does not exist" in stderr and not (tmp_path / "missing").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_superres_command(files, tmp_path, capsys):
    low = _save(tmp_path / "low.png", sample_image("coffee", (16, 20)))
    out = tmp_path / "sr.png"
    code, stdout, stderr = run(["superres", low, "--guide", files["style"], "-o", str(out), "--checkpoint",
                                files["ckpt"]], capsys)
    assert code == 0, stderr
    assert Image.open(out).size == (60, 48)
    code, _, stderr = run(["superres", str(tmp_path / "nope.png"), "-o", str(tmp_path / "x.png")], capsys)
    assert code == 2 and stderr.startswith("error:")


def test_console_entry_point():
    out = subprocess.run([sys.executable, "-m", "flexsolver", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"flexsolver {fs.__version__}"
    out = subprocess.run([sys.executable, "-m", "flexsolver", "stylize", "a.png"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: give a CONTENT image (or folder) and at least one STYLE image, or --example"]


def test_shipped_checkpoint_and_example(tmp_path, capsys):
    from flexsolver.shipped import DEFAULT_MODEL, shipped_checkpoint

    params, config = fs.load_checkpoint()
    assert shipped_checkpoint().name == DEFAULT_MODEL
    assert sum(x.size for x in jax.tree.leaves(params)) == fs.param_count(config["n"], config["l"])
    reference = fs.init_params(jax.random.PRNGKey(0), n=config["n"], l=config["l"])
    assert jax.tree.structure(params) == jax.tree.structure(reference)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
    out = tmp_path / "stylized.png"
    code, stdout, stderr = run(["stylize", "--example", "-o", str(out), "--max-side", "64"], capsys)
    assert code == 0, stderr
    assert max(Image.open(out).size) == 64 and f"n={config['n']}" in stdout


def test_a_second_process_runs_only_cached_programs(files, tmp_path):
    """The second ``flexsolver stylize`` of a same-sized image compiles nothing: its two programs
    (the style's Grams, the solver) come from the persistent cache, and no eager operation
    compiles a program of its own (each costs tens of ms in every new process)."""
    import os

    env = {**os.environ, "FLEXSOLVER_CACHE_DIR": str(tmp_path / "cache"), "JAX_LOG_COMPILES": "1",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    command = [sys.executable, "-m", "flexsolver", "stylize", files["content"], files["style"],
               "-o", str(tmp_path / "out.png"), "--checkpoint", files["ckpt"], "--quiet"]
    logs = []
    for _ in range(2):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        logs.append(done.stderr)
    compiled = [line for line in logs[1].splitlines() if "Compiling " in line]
    hits = [line for line in logs[1].splitlines() if "Persistent compilation cache hit" in line]
    assert len(compiled) == 2 and len(hits) == 2, "\n".join(compiled)
