"""flexsolver.video and the video experiments, on synthetic frames only (no ../shared data)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from flexsolver import video as fv  # noqa: E402

H, W = 64, 96
SQ, X0, DX, Y0 = 16, 30, 6, 24  # a 16×16 square at x = 30 moving by +6 px, rows 24..40


def _textured(shape, seed):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 1.0)


BG = _textured((H, W, 3), 0)
SQUARE = _textured((SQ, SQ, 3), 1) * 0.5 + 0.5


def _frame(x):
    f = BG.copy()
    f[Y0 : Y0 + SQ, x : x + SQ] = SQUARE
    return f


def test_warp_integer_flow_is_exact():
    img = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    dx, dy = 3, -2
    flow = np.broadcast_to(np.array([dx, dy], np.float32), (20, 30, 2))
    out = fv.warp(img, flow)  # out(p) = img(p + flow(p))
    np.testing.assert_array_equal(out[2:, :-3], img[:-2, 3:])
    # border clamp: samples beyond the right edge read the last column
    np.testing.assert_array_equal(out[2:, -1], img[:-2, -1])
    # half-pixel flow: the average of two neighbours (bilinear); works on (H,W) too
    half = np.broadcast_to(np.array([0.5, 0.0], np.float32), (20, 30, 2))
    np.testing.assert_allclose(fv.warp(img[..., 0], half)[:, :-1], 0.5 * (img[:, :-1, 0] + img[:, 1:, 0]), atol=1e-6)


def test_warp_follows_dis_flow_convention():
    a, b = _frame(X0), _frame(X0 + DX)
    w_bw = fv.flow(b, a)  # b(p) ≈ a(p + w_bw(p))
    static = np.s_[:8, :]  # far from the square
    assert np.abs(w_bw[static]).max() < 0.5
    inside = np.s_[Y0 + 4 : Y0 + SQ - 4, X0 + DX + 4 : X0 + DX + SQ - 4]
    np.testing.assert_allclose(w_bw[inside][..., 0], -DX, atol=0.75)
    err = np.abs(fv.warp(a, w_bw) - b)[inside].mean()
    assert err < 0.05


def test_mask_hand_made_flows_flags_disocclusion_and_boundary():
    w_fw = np.zeros((H, W, 2), np.float32)
    w_fw[Y0 : Y0 + SQ, X0 : X0 + SQ, 0] = DX  # frame i: the square moves right
    w_bw = np.zeros((H, W, 2), np.float32)
    w_bw[Y0 : Y0 + SQ, X0 + DX : X0 + DX + SQ, 0] = -DX  # frame i+1: it came from the left
    m = fv.consistency_mask(w_fw, w_bw)
    assert m.dtype == np.float32 and m.shape == (H, W)
    assert set(np.unique(m)) <= {0.0, 1.0}
    # the strip uncovered by the square (background in frame i+1, square in frame i)
    assert (m[Y0 + 1 : Y0 + SQ - 1, X0 + 1 : X0 + DX - 1] == 0).all()
    # the square's edges are motion boundaries
    assert (m[Y0 + 2 : Y0 + SQ - 2, X0 + DX + SQ - 1] == 0).all()
    # the static background and the inside of the square are consistent
    assert (m[:Y0 - 2] == 1).all() and (m[:, X0 + DX + SQ + 2 :] == 1).all()
    assert (m[Y0 + 2 : Y0 + SQ - 2, X0 + DX + 2 : X0 + DX + SQ - 2] == 1).all()


def test_mask_dis_flows_flags_synthetic_occlusion():
    (w_bw, m), = fv.flows([_frame(X0), _frame(X0 + DX)])
    assert m[Y0 + 2 : Y0 + SQ - 2, X0 : X0 + DX].mean() < 0.5  # disoccluded strip: mostly out
    assert m[:8].min() == 1 and m[:, -20:].min() == 1  # static textured regions: all in
    assert m[Y0 + 5 : Y0 + SQ - 5, X0 + DX + 5 : X0 + DX + SQ - 5].min() == 1  # rigidly moving inside
    assert fv.warping_error(_frame(X0), _frame(X0 + DX), w_bw, m) < 1e-2


def _random_prox_data(seed=0, shape=(12, 16)):
    rng = np.random.default_rng(seed)
    y = rng.random((*shape, 3)).astype(np.float32)
    w = rng.random((*shape, 3)).astype(np.float32)
    m = rng.random(shape).astype(np.float32)
    m[::3] = 0.0
    return y, w, m


def test_temporal_prox_closed_form_and_argmin():
    y, w, m, lam = *_random_prox_data(), 0.37
    prox = fv.temporal_prox(w, m, lam)
    assert isinstance(prox, jax.tree_util.Partial)
    x = np.asarray(prox(y))
    m2 = m[..., None] ** 2
    np.testing.assert_allclose(x, (y + 2 * lam * m2 * w) / (1 + 2 * lam * m2), rtol=1e-6, atol=1e-6)

    def objective(x):
        return 0.5 * jnp.sum((x - y) ** 2) + lam * jnp.sum((m[..., None] * (w - x)) ** 2)

    grad = jax.jit(jax.grad(objective))
    assert float(jnp.abs(grad(jnp.asarray(x))).max()) < 1e-5
    z = jnp.asarray(y)
    for _ in range(300):  # gradient descent converges to the prox output
        z = z - 0.3 * grad(z)
    np.testing.assert_allclose(np.asarray(z), x, atol=1e-5)
    assert float(objective(jnp.asarray(x))) <= float(objective(z)) + 1e-6
    # batch of 1, as inside solve
    np.testing.assert_allclose(np.asarray(prox(y[None]))[0], x, atol=1e-7)


def test_temporal_prox_mask_zero_is_identity_and_same_structure():
    y, w, m = _random_prox_data(1)
    ident = fv.temporal_prox(np.zeros_like(w), np.zeros_like(m))
    np.testing.assert_array_equal(np.asarray(ident(y)), y)
    full = fv.temporal_prox(w, m)
    assert jax.tree_util.tree_structure(ident) == jax.tree_util.tree_structure(full)
    with pytest.raises(ValueError):
        fv.temporal_prox(w, m[:-1])


def test_video_round_trip(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = [_frame(X0 + t) for t in range(5)]
    with fv.VideoWriter(path, fps=10) as writer:
        writer.write_all(frames)
    assert writer.count == 5
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # temp file renamed
    back = fv.read_frames(path)
    assert len(back) == 5 and back[0].shape == (H, W, 3) and back[0].dtype == np.float32
    assert np.abs(back[2] - frames[2]).mean() < 0.08  # lossy codec
    assert len(fv.read_frames(path, max_frames=3)) == 3
    assert fv.read_frames(path, max_side=48)[0].shape == (32, 48, 3)
    assert fv.fps_of(path) == pytest.approx(10, abs=0.5)


def test_video_errors(tmp_path):
    with pytest.raises(fv.VideoError, match="no such file"):
        fv.read_frames(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(fv.VideoError, match="cannot read video"):
        fv.read_frames(bad)
    with pytest.raises(fv.VideoError, match="extension"):
        fv.VideoWriter(tmp_path / "out.gif")
    with pytest.raises(fv.VideoError, match="does not exist"):
        fv.VideoWriter(tmp_path / "nope" / "out.mp4")


def test_cli_video_compiles_once(tmp_path, capsys):
    from PIL import Image

    from flexsolver.cli import main as cli_main
    from flexsolver.solver import _solve
    from tests.helpers import count_compilations

    def main(argv):
        cli_main(["video", *argv])

    src = tmp_path / "in.mp4"
    with fv.VideoWriter(src, fps=10) as writer:  # 5 frames 32×48
        writer.write_all([cv2.resize(_frame(X0 + 2 * t), (48, 32), interpolation=cv2.INTER_AREA) for t in range(5)])
    style = tmp_path / "style.png"
    Image.fromarray((_textured((40, 40, 3), 5) * 255).astype(np.uint8)).save(style)
    out = tmp_path / "out.mp4"
    with count_compilations(_solve) as compiled:
        main([str(src), str(style), "-o", str(out), "--random", "--max-side", "48"])
    assert compiled.count <= 1  # one compilation for the whole clip
    back = fv.read_frames(out)
    assert len(back) == 5 and back[0].shape == (32, 48, 3)
    assert "5 frames" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # one-line error for an unreadable input
        main([str(tmp_path / "missing.avi"), str(style), "-o", str(tmp_path / "x.mp4"), "--random"])
    assert e.value.code == 2
