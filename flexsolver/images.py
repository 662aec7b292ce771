"""Image I/O and small array helpers (numpy + Pillow only).

Convention everywhere in flexsolver: an image is a float32 array of shape (H, W, 3) with values in
[0, 1]. Greyscale images are (H, W). Sizes are given as (H, W), never Pillow's (W, H).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "list_images",
    "load_image",
    "decode_image",
    "resize",
    "resize_max_side",
    "center_square",
    "to_uint8",
    "save_image",
    "image_grid",
    "psnr",
]

PathLike = str | os.PathLike[str]
Method = Image.Resampling | str

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # what every folder reader takes

_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


class ImageError(ValueError):
    """An image could not be read, decoded or written. The message is always one line."""


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text


def _method(method: Method) -> Image.Resampling:
    if isinstance(method, str):
        try:
            return Image.Resampling[method.upper()]
        except KeyError:
            names = ", ".join(m.name.lower() for m in Image.Resampling)
            raise ValueError(f"unknown resampling method {method!r}; expected one of {names}") from None
    return Image.Resampling(method)


def _pil_to_float(im: Image.Image) -> np.ndarray:
    """Any Pillow image -> float32 (H, W, 3) in [0, 1]; alpha is dropped, not composited."""
    im = ImageOps.exif_transpose(im) or im
    mode = im.mode
    if mode in _SIXTEEN_BIT:
        x = np.asarray(im).astype(np.float32) / 65535.0
        x = np.clip(x, 0.0, 1.0)
    elif mode == "F":
        x = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
    elif mode == "L":
        x = np.asarray(im).astype(np.float32) / 255.0
    elif mode == "1":
        x = np.asarray(im.convert("L")).astype(np.float32) / 255.0
    elif mode == "RGB":
        x = np.asarray(im).astype(np.float32) / 255.0
    else:
        # P, PA, LA, RGBA, RGBa, La, CMYK, YCbCr, ... Going through RGBA keeps palette
        # transparency handling quiet; the alpha channel is then dropped.
        target = "RGBA" if ("A" in mode or "a" in mode or mode == "P") else "RGB"
        x = np.asarray(im.convert(target))[..., :3].astype(np.float32) / 255.0
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    return np.ascontiguousarray(x, dtype=np.float32)


def _decode(fp: PathLike | BinaryIO, name: str, max_side: int | None) -> np.ndarray:
    try:
        with Image.open(fp) as im:
            im.load()
            if im.width == 0 or im.height == 0:
                raise ImageError(f"cannot read image {name}: it has zero size")
            x = _pil_to_float(im)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"cannot read image {name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"cannot read image {name}: it is a directory") from None
    except Exception as e:  # Pillow raises many types for broken files (OSError, SyntaxError, ...)
        raise ImageError(f"cannot read image {name}: {_one_line(e)}") from e
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ImageError(f"cannot read image {name}: it has zero size")
    if max_side is not None:
        x = resize_max_side(x, max_side)
    return x


def list_images(folder: PathLike, recursive: bool = False) -> list[str]:
    """The image files of ``folder`` (by suffix, case-insensitive: :data:`IMAGE_SUFFIXES`), sorted
    by path; with ``recursive``, those of its subfolders too. Empty when there are none."""
    root = Path(folder)
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(str(p) for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_image(path: PathLike, max_side: int | None = None) -> np.ndarray:
    """Read any image Pillow understands as float32 (H, W, 3) in [0, 1].

    EXIF orientation is applied; alpha is dropped; greyscale is replicated to 3 channels;
    16-bit images are scaled by 1/65535. If ``max_side`` is given and the longest side is larger,
    the image is downscaled (Lanczos, aspect ratio kept); it is never upscaled.
    Raises ImageError (one line, naming the path) for a missing, empty or corrupt file.
    """
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ImageError(f"cannot read image {path}: the file is empty")
    return _decode(path, path, max_side)


def decode_image(data: bytes, name: str = "<bytes>", max_side: int | None = None) -> np.ndarray:
    """Like load_image, for encoded bytes (PNG, JPEG, ...). ``name`` is used in error messages."""
    if not data:
        raise ImageError(f"cannot read image {name}: no data")
    return _decode(io.BytesIO(data), name, max_side)


def _check_image(x: Any, what: str = "image") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] < 1):
        raise ValueError(f"{what} must have shape (H, W) or (H, W, C), got {x.shape}")
    return x


def resize(x: Any, size: tuple[int, int], method: Method = Image.Resampling.BICUBIC) -> np.ndarray:
    """Resize a float image to ``size = (H, W)``, channel by channel in Pillow's float ('F') mode.

    Pillow widens the filter when downscaling, so this is antialiased. No clipping is done
    (bicubic/Lanczos may overshoot [0, 1] slightly). Works for (H, W) and (H, W, C).
    """
    x = _check_image(x).astype(np.float32, copy=False)
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"resize: size must be positive (H, W), got {tuple(size)}")
    resample = _method(method)
    if x.shape[:2] == (h, w):
        return x.copy()
    if x.ndim == 2:
        return np.asarray(Image.fromarray(x).resize((w, h), resample=resample), dtype=np.float32)
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(x[:, :, c])).resize((w, h), resample=resample))
        for c in range(x.shape[2])
    ]
    return np.stack(chans, axis=2).astype(np.float32, copy=False)


def resize_max_side(x: Any, max_side: int, method: Method = Image.Resampling.LANCZOS) -> np.ndarray:
    """Downscale so that the longest side is at most ``max_side`` (aspect kept; never upscales)."""
    x = _check_image(x).astype(np.float32, copy=False)
    if int(max_side) < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    h, w = x.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return x
    scale = max_side / longest
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    return resize(x, new, method)


def center_square(x: Any) -> np.ndarray:
    """Centre crop to the largest square (a view for numpy input)."""
    x = _check_image(x)
    h, w = x.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return x[top : top + s, left : left + s]


def to_uint8(x: Any) -> np.ndarray:
    """[0, 1] floats -> uint8 (clipped, rounded; NaN -> 0)."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def check_writable(path: PathLike) -> tuple[str, str]:
    """Checks, before any long work, that an image can be saved at ``path``.

    Returns the Pillow format and the parent folder; raises ``ImageError`` otherwise.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = _SAVE_FORMATS.get(ext)
    if fmt is None:
        raise ImageError(f"cannot save image {path}: unknown extension {ext!r} (use .png, .jpg, .jpeg or .webp)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ImageError(f"cannot save image {path}: folder {parent} does not exist")
    return fmt, parent


def save_image(path: PathLike, x: Any) -> None:
    """Write a float image in [0, 1] ((H, W, 3), (H, W, 1) or (H, W)); format from the extension.

    Supported: .png, .jpg/.jpeg, .webp. The write is atomic (temp file in the same folder, then
    os.replace). The parent folder must exist. Accepts anything np.asarray accepts (jax arrays too).
    """
    path = os.fspath(path)
    fmt, parent = check_writable(path)
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[2] == 3)) or x.shape[0] == 0 or x.shape[1] == 0:
        raise ImageError(f"cannot save image {path}: expected shape (H, W, 3) or (H, W), got {x.shape}")
    im = Image.fromarray(to_uint8(x))
    kwargs: dict[str, Any] = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    fd, tmp = tempfile.mkstemp(dir=parent, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            im.save(f, format=fmt, **kwargs)
        mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise ImageError(f"cannot save image {path}: {_one_line(e)}") from e
        raise


def image_grid(rows: Sequence[Sequence[Any]], pad: int = 4, bg: float = 1.0) -> np.ndarray:
    """Tile images of possibly different sizes into one float32 (H, W, 3) image.

    ``rows[i][j]`` is placed top-left aligned in cell (i, j); column j is as wide as its widest
    image and row i as tall as its tallest. ``pad`` pixels of colour ``bg`` separate the cells and
    surround the grid. A cell may be None (left empty); greyscale cells are replicated to RGB.
    """
    if not rows or not any(len(r) for r in rows):
        raise ValueError("image_grid: no images given")
    cells = [[None if c is None else _check_image(c, "grid cell") for c in r] for r in rows]
    for r in cells:
        for i, c in enumerate(r):
            if c is not None and c.ndim == 2:
                r[i] = np.repeat(c[:, :, None], 3, axis=2)
            elif c is not None and c.shape[2] != 3:
                raise ValueError(f"image_grid: cells must have 3 channels, got {c.shape}")
    ncols = max(len(r) for r in cells)
    heights = [max((c.shape[0] for c in r if c is not None), default=0) for r in cells]
    widths = [max((r[j].shape[1] for r in cells if j < len(r) and r[j] is not None), default=0) for j in range(ncols)]
    out = np.full((sum(heights) + pad * (len(cells) + 1), sum(widths) + pad * (ncols + 1), 3), bg, np.float32)
    y = pad
    for r, h in zip(cells, heights):
        x0 = pad
        for j, c in enumerate(r):
            if c is not None:
                out[y : y + c.shape[0], x0 : x0 + c.shape[1]] = c
            x0 += widths[j] + pad
        y += h + pad
    return out


def psnr(x: Any, ref: Any, peak: float = 1.0) -> float:
    """``10 log10(peak² / mean((x − ref)²))`` in dB (``inf`` for identical images).

    Any array-likes of the same shape (numpy or JAX); the mean is accumulated in float64.
    """
    mse = float(np.mean((np.asarray(x, np.float32) - np.asarray(ref, np.float32)) ** 2, dtype=np.float64))
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak**2 / mse))
