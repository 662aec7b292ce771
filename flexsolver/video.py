"""Video: optical flow, warping, the consistency mask of Ruder et al., the temporal prox (SPEC §4.2),
and video file I/O. OpenCV for flow and I/O, numpy for warping and masks, JAX for the prox.

**Conventions.** Frames are float32 ``(H,W,3)`` RGB in [0,1]. A flow is float32 ``(H,W,2)`` in
pixels, ``flow[...,0]`` horizontal (x, columns), ``flow[...,1]`` vertical (y, rows) — OpenCV's
order. All warping is *backward*: ``warp(image, flow)(p) = image(p + flow(p))``, sampled
bilinearly with the sample coordinates clamped to the image (border clamp = replicate).

Between frames ``i`` and ``i+1`` (:func:`flows`):

* ``w_fw = DIS(frame_i, frame_{i+1})``, so ``frame_i(p) ≈ frame_{i+1}(p + w_fw(p))``;
* ``w_bw = DIS(frame_{i+1}, frame_i)``, so ``frame_{i+1}(p) ≈ frame_i(p + w_bw(p))``:
  ``warp(X_i, w_bw)`` carries frame ``i`` onto the grid of frame ``i+1``.

The mask lives on frame ``i+1``'s grid (:func:`consistency_mask`, Ruder et al. 2016): with
``ŵ_fw = warp(w_fw, w_bw)`` (the forward flow read where the backward flow points),

* occluded where ``|ŵ_fw + w_bw|² > 0.01(|ŵ_fw|² + |w_bw|²) + 0.5``;
* motion boundary where ``|∇u|² + |∇v|² > 0.01|w_bw|² + 0.002``, ``(u, v) = w_bw``, gradients by
  central differences (one-sided at the border, ``np.gradient``);
* ``M = 0`` there, ``M = 1`` elsewhere.

**Why DIS** (Kroeger et al. 2016): it is OpenCV's fast dense flow (used at the ``MEDIUM``
preset; its speed is in docs/DESIGN.md), needs no extra package or weights, and SPEC §4.2 asks
for any fast method; errors it makes are caught by the forward–backward check anyway.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable

import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

__all__ = [
    "VideoError",
    "VideoWriter",
    "consistency_mask",
    "flow",
    "flows",
    "frame_prox",
    "stylize_clip",
    "read_frames",
    "temporal_prox",
    "warp",
    "warping_error",
]

VIDEO_EXTENSIONS = (".mp4",)


class VideoError(ValueError):
    """A video could not be read or written. The message is always one line."""


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover
        raise VideoError("OpenCV is needed for video: pip install opencv-python-headless") from e
    return cv2


# --------------------------------------------------------------------------------------------
# Flow, warping, masks


def _grey_uint8(frame) -> np.ndarray:
    x = np.asarray(frame, np.float32)
    if x.ndim == 3:
        x = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114  # ITU-R 601 luma, as cv2
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


_DIS = None


def flow(a, b) -> np.ndarray:
    """Dense DIS flow (``PRESET_MEDIUM``) from frame ``a`` to frame ``b``: ``a(p) ≈ b(p + flow(p))``.

    ``a, b``: float ``(H,W,3)`` or ``(H,W)`` in [0,1] (converted to greyscale uint8).
    Returns float32 ``(H,W,2)`` (x then y).
    """
    global _DIS
    cv2 = _cv2()
    ga, gb = _grey_uint8(a), _grey_uint8(b)
    if ga.shape != gb.shape:
        raise ValueError(f"frames of different sizes: {ga.shape} and {gb.shape}")
    if _DIS is None:
        _DIS = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return np.asarray(_DIS.calc(ga, gb, None), np.float32)


def warp(image, flow_) -> np.ndarray:
    """Backward bilinear warping ``out(p) = image(p + flow(p))``, sample coordinates clamped to
    the image. ``image``: ``(H,W)`` or ``(H,W,C)``; ``flow``: ``(H,W,2)`` (x, y). An integer
    flow moves pixels exactly: ``warp(x, (dx, dy))[r, c] = x[r + dy, c + dx]`` inside."""
    img = np.asarray(image, np.float32)
    f = np.asarray(flow_, np.float32)
    h, w = img.shape[:2]
    if f.shape != (h, w, 2):
        raise ValueError(f"flow of shape {f.shape} does not match an image of size {(h, w)}")
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    sx = np.clip(xs + f[..., 0], 0.0, w - 1)
    sy = np.clip(ys + f[..., 1], 0.0, h - 1)
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    ax = sx - x0
    ay = sy - y0
    if img.ndim == 3:
        ax, ay = ax[..., None], ay[..., None]
    top = img[y0, x0] * (1 - ax) + img[y0, x1] * ax
    bottom = img[y1, x0] * (1 - ax) + img[y1, x1] * ax
    return (top * (1 - ay) + bottom * ay).astype(np.float32)


def consistency_mask(w_fw, w_bw) -> np.ndarray:
    """Ruder et al.'s mask on frame ``i+1``'s grid: float32 ``(H,W)``, 0 at disocclusions and
    motion boundaries, 1 elsewhere. ``w_fw``: flow ``i → i+1``, ``w_bw``: flow ``i+1 → i``."""
    w_fw = np.asarray(w_fw, np.float32)
    w_bw = np.asarray(w_bw, np.float32)
    fw_hat = warp(w_fw, w_bw)
    sq = lambda v: np.sum(v * v, axis=-1)  # noqa: E731
    occluded = sq(fw_hat + w_bw) > 0.01 * (sq(fw_hat) + sq(w_bw)) + 0.5
    uy, ux = np.gradient(w_bw[..., 0])
    vy, vx = np.gradient(w_bw[..., 1])
    boundary = ux**2 + uy**2 + vx**2 + vy**2 > 0.01 * sq(w_bw) + 0.002
    return (~(occluded | boundary)).astype(np.float32)


def flows(frames) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each consecutive pair ``(i, i+1)``: ``(w_bw, M)``, the backward flow that warps frame
    ``i`` onto frame ``i+1`` (``warp(X_i, w_bw)``) and the consistency mask. Length ``T − 1``."""
    out = []
    for a, b in zip(frames[:-1], frames[1:]):
        w_fw, w_bw = flow(a, b), flow(b, a)
        out.append((w_bw, consistency_mask(w_fw, w_bw)))
    return out


def warping_error(prev_out, next_out, w_bw, mask) -> float:
    """``Σ_p M(p)‖warp(O_t, w_bw)(p) − O_{t+1}(p)‖² / Σ_p M(p)`` (Lai et al. 2018; the squared
    norm over the channels), 0 when the mask is empty."""
    d = warp(prev_out, w_bw) - np.asarray(next_out, np.float32)
    m = np.asarray(mask, np.float32)
    total = float(m.sum())
    return float((m * np.sum(d * d, axis=-1)).sum() / total) if total > 0 else 0.0


# --------------------------------------------------------------------------------------------
# The temporal prox


def _temporal(warped, mask, lam, y):
    m2 = jnp.square(mask)[..., None]
    a = 2.0 * lam * m2
    return (y + a * warped) / (1.0 + a)


def temporal_prox(prev_stylised_warped, mask, lam: float = 0.37) -> Partial:
    """``P(Y) = (Y + 2λ M² ⊙ W) / (1 + 2λ M²)``, the prox of ``λ‖M ⊙ (W − X)‖²`` (SPEC §4.2).

    Args:
      prev_stylised_warped: ``W = warp(X(i), w_bw)``, ``(H,W,3)`` or ``(B,H,W,3)``.
      mask: ``M``, ``(H,W)`` or ``(B,H,W)`` (broadcast over the channels). ``M = 0``: identity.
      lam: λ_R (0.37 in the paper).
    Returns:
      a ``jax.tree_util.Partial`` whose leaves are ``W``, ``M`` and λ (float32 arrays), so new
      frames of the same size reuse a jitted solver.
    """
    w = jnp.asarray(prev_stylised_warped, jnp.float32)
    m = jnp.asarray(mask, jnp.float32)
    if w.shape[-1] != 3 or w.ndim not in (3, 4):
        raise ValueError(f"the warped frame must be (H,W,3) or (B,H,W,3), got {w.shape}")
    if m.shape != w.shape[:-1]:
        raise ValueError(f"mask of shape {m.shape} does not match the warped frame {w.shape}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    return Partial(_temporal, w, m, jnp.float32(lam))


# --------------------------------------------------------------------------------------------
# Video I/O


def read_frames(path, max_side: int | None = None, max_frames: int | None = None) -> list[np.ndarray]:
    """Frames of a video file (anything OpenCV's FFmpeg reads: mp4, avi, …) as float32 RGB
    ``(H,W,3)`` in [0,1], downscaled (area filter, aspect kept, never upscaled) so that the
    longest side is at most ``max_side``; at most ``max_frames``. Raises :class:`VideoError`."""
    cv2 = _cv2()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoError(f"cannot read video {path}: no such file")
    if os.path.isdir(path):
        raise VideoError(f"cannot read video {path}: it is a directory")
    if os.path.getsize(path) == 0:
        raise VideoError(f"cannot read video {path}: the file is empty")
    if max_side is not None and int(max_side) < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    if max_frames is not None and int(max_frames) < 1:
        raise ValueError(f"the number of frames must be >= 1, got {max_frames}")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise VideoError(f"cannot read video {path}: not a video OpenCV can decode")
        frames = []
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            h, w = bgr.shape[:2]
            if max_side is not None and max(h, w) > max_side:
                s = max_side / max(h, w)
                bgr = cv2.resize(bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            frames.append(np.ascontiguousarray(bgr[..., ::-1], dtype=np.float32) / 255.0)
    finally:
        cap.release()
    if not frames:
        raise VideoError(f"cannot read video {path}: no frame could be decoded")
    return frames


def fps_of(path, default: float = 24.0) -> float:
    """The frame rate stored in a video file (``default`` if unknown)."""
    cv2 = _cv2()
    cap = cv2.VideoCapture(os.fspath(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else default


def check_video_writable(path) -> str:
    """Checks, before any long work, that a video can be written at ``path`` (``.mp4``, existing
    folder). Returns the folder; raises :class:`VideoError`."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in VIDEO_EXTENSIONS:
        raise VideoError(f"cannot write video {path}: unknown extension {ext!r} (use .mp4)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise VideoError(f"cannot write video {path}: folder {parent} does not exist")
    return parent


class VideoWriter:
    """Writes float RGB frames in [0,1] to an mp4 (codec ``mp4v``). Frames go to a temporary file
    in the same folder, renamed to ``path`` by :meth:`close` (an interrupted run leaves no
    half-written file). The size is set by the first frame. Use as a context manager: on an
    exception the temporary file is removed."""

    def __init__(self, path, fps: float = 24.0):
        self.path = os.fspath(path)
        self.parent = check_video_writable(self.path)
        self.fps = float(fps)
        self.count = 0
        self._writer = None
        self._size = None
        # not mkstemp: that file would be private (0600); OpenCV creates it with the umask.
        stem = os.path.basename(self.path)
        self._tmp = os.path.join(self.parent, f".{stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp.mp4")

    def write(self, frame) -> None:
        cv2 = _cv2()
        x = np.asarray(frame, np.float32)
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"a video frame must be (H,W,3), got {x.shape}")
        h, w = x.shape[:2]
        if self._writer is None:
            self._writer = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                self.abort()
                raise VideoError(f"cannot write video {self.path}: OpenCV could not open an mp4v writer")
            self._size = (h, w)
        elif (h, w) != self._size:
            raise ValueError(f"frame of size {(h, w)} in a video of size {self._size}")
        u8 = np.round(np.clip(np.nan_to_num(x), 0.0, 1.0) * 255.0).astype(np.uint8)
        self._writer.write(np.ascontiguousarray(u8[..., ::-1]))
        self.count += 1

    def write_all(self, frames: Iterable) -> None:
        for f in frames:
            self.write(f)

    def close(self) -> None:
        if self._writer is None:
            self.abort()
            raise VideoError(f"cannot write video {self.path}: no frames")
        self._writer.release()
        self._writer = None
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def frame_prox(frame, warped, mask, lam: float, photo: bool):
    """The prox for one frame: [matting of the frame] → temporal → clip to [0,1]."""
    from flexsolver.matting import matting_prox
    from flexsolver.prox import clip, compose

    parts = [matting_prox(frame)] if photo else []
    parts += [temporal_prox(warped, mask, lam), clip(0.0, 1.0)]
    return compose(*parts)


def stylize_clip(
    params,
    frames,
    grams,
    *,
    nonlinearity: str | None = None,
    temporal: bool = True,
    photo: bool = False,
    lam: float = 0.37,
    flow_masks=None,
    progress: bool = True,
):
    """Yields the stylised frames (float32 ``(H,W,3)`` in [0,1]) one by one, online.

    ``flow_masks``: precomputed :func:`flexsolver.video.flows` of ``frames`` (computed here,
    pair by pair, when ``None`` and ``temporal``).
    """
    import sys

    from tqdm import tqdm

    from flexsolver.solver import solve

    h, w = frames[0].shape[:2]
    no_mask = np.zeros((h, w), np.float32)
    prev = None
    bar = tqdm(total=len(frames), unit="frame", disable=not progress, file=sys.stderr)
    try:
        for i, frame in enumerate(frames):
            if temporal and prev is not None:
                if flow_masks is not None:
                    w_bw, mask = flow_masks[i - 1]
                else:
                    w_bw, mask = flows([frames[i - 1], frame])[0]
                warped = warp(prev, w_bw)
            else:
                warped, mask = np.zeros_like(frame), no_mask
            prox = frame_prox(frame, warped, mask, lam, photo)
            out = np.asarray(solve(params, frame, grams, prox=prox, nonlinearity=nonlinearity))
            prev = out
            bar.update(1)
            yield out
    finally:
        bar.close()
