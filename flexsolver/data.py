"""Training data: square RGB crops, content/style pairs, per-image noise and random style weights.

Sources (``source`` strings):

* ``folder:PATH`` (or just an existing directory ``PATH``): every .jpg/.jpeg/.png/.webp/.bmp file
  under PATH, recursively, in sorted path order. All images are decoded once, centre-cropped to the
  largest square and resized to ``size``, and kept in memory as uint8 ``(N, size, size, 3)``.
* ``tfds:NAME`` (e.g. ``tfds:coco/2014``): a tensorflow-datasets dataset with an ``image`` feature,
  read in file order (``shuffle_files=False``) and decoded by Pillow (undecodable images are skipped
  with a warning). Needs TensorFlow (``pip install 'flexsolver[tfds]'``).

``TrainBatches`` yields, for steps ``start_step, start_step + 1, ...``, dicts with

* ``x_c``, ``x_s``: float32 ``(batch, size, size, 3)``: content and style images, drawn independently
  and uniformly, each plus its own noise ``U[-a, a]``, ``a ~ U[0, 0.1)`` (not clipped afterwards);
* ``betas``: float32 ``(batch, 5)``: style-layer weights for conv1_1..conv5_1, each ``1/0.9`` with
  probability 0.9, else 0;
* ``step``: int.

All randomness of step ``k`` comes from ``np.random.default_rng([seed, k, shard_index])``, so a run
restarted with ``start_step=k`` sees exactly the batches an uninterrupted run would see.

Streaming (tfds) sources keep a window of ``reservoir`` decoded images: at step ``k`` the window
holds the records at positions ``[k*r, k*r + W)`` of the repeated record stream, ``r = 2 * batch``
(as many new records per step as images drawn), ``W = min(reservoir, num_images)``; images are drawn
uniformly from the window. The window is a function of ``k`` alone, so resuming is exact too, as long
as the dataset files and the sharding are the same (resuming skips ``k*r mod num_images`` records
without decoding them).
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
from PIL import Image

from . import images
from .images import ImageError, center_square, decode_image, load_image, resize, to_uint8

__all__ = ["DataError", "load_square", "random_crop", "TrainBatches", "fixed_pairs"]
NUM_STYLE_LAYERS = 5  # conv1_1, conv2_1, conv3_1, conv4_1, conv5_1
BETA_ON = 1.0 / 0.9
P_BETA_ON = 0.9
MAX_NOISE = 0.1
_FORMS = "expected folder:PATH (a directory of .png/.jpg/.jpeg/.webp/.bmp/.tif images), tfds:NAME (e.g. tfds:coco/2014) or an existing directory"
_FIXED_TAG = 0x5EED_F1  # keeps fixed_pairs' random stream apart from the training streams


class DataError(ValueError):
    """A data source is malformed, missing or empty. The message is one line and lists the accepted forms."""


# --------------------------------------------------------------------------------------------------
# single images


def load_square(path_or_array: str | os.PathLike[str] | bytes | np.ndarray, size: int) -> np.ndarray:
    """Centre crop to the largest square, resize to ``size x size`` (bicubic, antialiased); uint8 (size, size, 3).

    Accepts a path, encoded bytes, or an array ((H, W), (H, W, 1), (H, W, 3) or (H, W, 4); uint8 in
    [0, 255] or float in [0, 1]). Raises images.ImageError for unreadable files.
    """
    if isinstance(path_or_array, bytes):
        x = decode_image(path_or_array)
    elif isinstance(path_or_array, (str, os.PathLike)):
        x = load_image(path_or_array)
    else:
        x = np.asarray(path_or_array)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        if x.ndim == 3 and x.shape[2] == 4:
            x = x[:, :, :3]
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3 or x.shape[2] not in (1, 3) or 0 in x.shape:
            raise ValueError(f"load_square: expected an (H, W[, 1|3|4]) image, got shape {np.shape(path_or_array)}")
        if x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
    return to_uint8(resize(center_square(x), (size, size), Image.Resampling.BICUBIC))


# --------------------------------------------------------------------------------------------------
# sources


def _parse_source(source: str) -> tuple[str, str]:
    if not isinstance(source, str) or not source:
        raise DataError(f"bad data source {source!r}: {_FORMS}")
    if source.startswith("folder:"):
        path = source[len("folder:") :]
        if not os.path.isdir(path):
            raise DataError(f"data folder {path!r} does not exist or is not a directory; {_FORMS}")
        return "folder", path
    if source.startswith("tfds:"):
        name = source[len("tfds:") :]
        if not name:
            raise DataError(f"bad data source {source!r}: missing dataset name; {_FORMS}")
        return "tfds", name
    if os.path.isdir(source):
        return "folder", source
    if ":" in source.split(os.sep)[0] and not os.path.exists(source):
        raise DataError(f"unknown data source prefix in {source!r}; {_FORMS}")
    raise DataError(f"data folder {source!r} does not exist or is not a directory; {_FORMS}")


def _check_shard(shard_index: int, shard_count: int) -> None:
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise ValueError(f"need 0 <= shard_index < shard_count, got shard_index={shard_index}, shard_count={shard_count}")


def _try_square(path: str, size: int) -> np.ndarray | str:
    try:
        return load_square(path, size)
    except (ImageError, ValueError) as e:
        return str(e)


def _decode_all(paths: Sequence[str], decode: Any, desc: str) -> list[np.ndarray]:
    """``decode(path)`` (an array, or an error message) for every path, in parallel threads
    (Pillow releases the GIL while decoding and resizing), with a progress bar for many files;
    unreadable files are skipped with a warning each."""
    out = []
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(decode, paths)
        if len(paths) > 50:
            from tqdm import tqdm

            results = tqdm(results, total=len(paths), desc=desc, unit="img")
        for path, r in zip(paths, results):
            if isinstance(r, str):
                warnings.warn(f"skipping unreadable image {path}: {r}", stacklevel=4)
            else:
                out.append(r)
    return out


def _decode_folder(paths: Sequence[str], size: int, desc: str) -> np.ndarray:
    """Decode ``paths`` to uint8 (n, size, size, 3) centre squares."""
    squares = _decode_all(paths, lambda p: _try_square(p, size), desc)
    return np.stack(squares) if squares else np.empty((0, size, size, 3), np.uint8)


class _Pool(Protocol):
    num_images: int

    def window(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 buffer (M, size, size, 3), indices into it that may be drawn at ``step``)."""
        ...


def _decode_folder_full(paths: Sequence[str], max_short: int, desc: str) -> list[np.ndarray]:
    """Decode ``paths`` to uint8 ``(h, w, 3)`` images whose short side is at most ``max_short``
    (larger ones are downscaled)."""

    def one(path: str) -> np.ndarray | str:
        try:
            x = load_image(path)
        except (ImageError, ValueError) as e:
            return str(e)
        h, w = x.shape[:2]
        if min(h, w) > max_short:
            f = max_short / min(h, w)
            x = resize(x, (max(1, round(h * f)), max(1, round(w * f))), Image.Resampling.BICUBIC)
        return to_uint8(x)

    return _decode_all(paths, one, desc)


class _FolderPool:
    """Every image of one or more folders: centre squares at ``size`` (``full=False``), or whole
    images with their short side capped at ``2 * size`` (``full=True``, for random crops)."""

    def __init__(self, folders: Sequence[str], size: int, shard_index: int, shard_count: int, full: bool = False):
        paths = [p for folder in folders for p in images.list_images(folder, recursive=True)][shard_index::shard_count]
        where = " + ".join(repr(f) for f in folders)
        if not paths:
            shard = f" for shard {shard_index}/{shard_count}" if shard_count > 1 else ""
            raise DataError(f"no image files in folder {where}{shard}; {_FORMS}")
        desc = f"decoding {' + '.join(folders)}"
        self.images: Any = _decode_folder_full(paths, 2 * size, desc) if full else _decode_folder(paths, size, desc)
        if len(self.images) == 0:
            raise DataError(f"no readable image in folder {where} ({len(paths)} files tried); {_FORMS}")
        self.num_images = len(self.images)
        self._all = np.arange(self.num_images)

    def window(self, step: int) -> tuple[Any, np.ndarray]:
        return self.images, self._all


def _image_only(example: dict[str, Any]) -> Any:
    return example["image"]


def _tfds_dataset(name: str, split: str, shard_index: int, shard_count: int, data_dir: str | None) -> Any:
    """The tf.data dataset of encoded image bytes for one shard of ``split``, in file order."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(f"tfds:{name} needs tensorflow-datasets and TensorFlow ({e}); pip install 'flexsolver[tfds]'") from e
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if "image" not in builder.info.features:
            raise DataError(f"tfds dataset {name!r} has no 'image' feature; {_FORMS}")
        builder.download_and_prepare()
        if shard_count > 1:
            split = tfds.even_splits(split, n=shard_count)[shard_index]
        ds = builder.as_dataset(split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
    except DataError:
        raise
    except Exception as e:
        msg = " ".join(str(e).split())[:300]
        raise DataError(f"cannot load tfds dataset {name!r} split {split!r}: {type(e).__name__}: {msg}") from e
    return ds.map(_image_only)


def _tfds_cardinality(ds: Any) -> int | None:
    n = int(ds.cardinality())
    return n if n >= 0 else None


class _TfdsPool:
    """Sliding window over the repeated record stream; see the module docstring."""

    def __init__(self, name: str, size: int, refresh: int, reservoir: int, split: str, shard_index: int, shard_count: int, data_dir: str | None):
        self._name = name
        self._ds = _tfds_dataset(name, split, shard_index, shard_count, data_dir)
        n = _tfds_cardinality(self._ds)
        if n == 0:
            raise DataError(f"tfds dataset {name!r} split {split!r} is empty; {_FORMS}")
        self.num_images = n if n is not None else -1
        self._n = n
        self._size = size
        self._refresh = refresh
        self._w = min(reservoir, n) if n is not None else reservoir
        self._buf = np.zeros((self._w, size, size, 3), np.uint8)
        self._valid = np.zeros(self._w, bool)
        self._it: Iterator[bytes] | None = None
        self._next = 0  # stream position the iterator yields next
        self._warned: set[int] = set()

    def _record(self, pos: int) -> int:
        return pos % self._n if self._n else pos

    def _start(self, pos: int) -> None:
        import tensorflow_datasets as tfds

        self._it = iter(tfds.as_numpy(self._ds.repeat().skip(self._record(pos))))
        self._next = pos

    def window(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        lo = step * self._refresh
        hi = lo + self._w
        if self._it is None or lo < self._next - self._w:
            self._start(lo)
        assert self._it is not None
        while self._next < hi:
            data = next(self._it)
            pos = self._next
            self._next += 1
            if pos < lo:
                continue  # only when refresh > window: records nobody will draw
            slot = pos % self._w
            try:
                self._buf[slot] = load_square(bytes(data), self._size)
                self._valid[slot] = True
            except (ImageError, ValueError) as e:
                self._valid[slot] = False
                rec = self._record(pos)
                if rec not in self._warned:
                    self._warned.add(rec)
                    warnings.warn(f"skipping undecodable image, record {rec} of tfds:{self._name}: {e}", stacklevel=2)
        slots = np.arange(lo, hi) % self._w
        idx = slots[self._valid[slots]]
        if idx.size == 0:
            raise DataError(f"no decodable image among records {lo}..{hi - 1} of tfds:{self._name}")
        return self._buf, idx


def _parse_sources(source: str) -> tuple[str, list[str]]:
    """``(kind, [where, …])`` of a source string; several folder sources may be joined with ','."""
    parts = [_parse_source(part) for part in source.split(",") if part] if "," in source else [_parse_source(source)]
    if len(parts) > 1 and any(kind != "folder" for kind, _ in parts):
        raise DataError(f"only folder sources can be joined with ',' (got {source!r}); {_FORMS}")
    return parts[0][0], [where for _, where in parts]


def _make_pool(
    source: str, size: int, refresh: int, reservoir: int, split: str, shard_index: int, shard_count: int,
    data_dir: str | None, full: bool,
) -> _Pool:
    """The pool of one source string (see :func:`_parse_sources`)."""
    kind, wheres = _parse_sources(source)
    if kind == "folder":
        return _FolderPool(wheres, size, shard_index, shard_count, full)
    return _TfdsPool(wheres[0], size, refresh, reservoir, split, shard_index, shard_count, data_dir)


# --------------------------------------------------------------------------------------------------
# batches


def random_crop(image: np.ndarray, size: int, crop_min: float, rng: np.random.Generator) -> np.ndarray:
    """A random square of ``image`` (uint8 ``(h, w, 3)``) resized to ``size``: its side is drawn
    uniformly in ``[crop_min, 1]`` times the short side, its place uniformly, and it is mirrored
    left–right with probability ½. Returns uint8 ``(size, size, 3)``."""
    h, w = image.shape[:2]
    side = max(1, int(round(min(h, w) * rng.uniform(crop_min, 1.0))))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    flip = bool(rng.random() < 0.5)
    crop = image[top : top + side, left : left + side]
    if flip:
        crop = crop[:, ::-1]
    if side != size:
        crop = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.BICUBIC))
    return crop


def _make_batch(
    pool: _Pool, step: int, batch: int, seed: int, shard_index: int,
    style_pool: _Pool | None = None, size: int = 0, crop_min: float = 0.0,
) -> dict[str, Any]:
    rng = np.random.default_rng([seed, step, shard_index])
    buf, idx = pool.window(step)
    if style_pool is None:  # contents and styles from one source (the paper's setting)
        pick = [buf[i] for i in idx[rng.integers(0, idx.size, size=2 * batch)]]
    else:
        style_buf, style_idx = style_pool.window(step)
        pick = [buf[i] for i in idx[rng.integers(0, idx.size, size=batch)]]
        pick += [style_buf[i] for i in style_idx[rng.integers(0, style_idx.size, size=batch)]]
    if crop_min > 0:
        pick = [random_crop(image, size, crop_min, rng) for image in pick]
    x = np.stack(pick).astype(np.float32) * np.float32(1 / 255)
    size = x.shape[1]
    amp = rng.uniform(0.0, MAX_NOISE, size=2 * batch).astype(np.float32)
    noise = rng.random((2 * batch, size, size, 3), dtype=np.float32) * np.float32(2) - np.float32(1)
    x += noise * amp[:, None, None, None]
    betas = np.where(rng.random((batch, NUM_STYLE_LAYERS)) < P_BETA_ON, BETA_ON, 0.0).astype(np.float32)
    return {"x_c": x[:batch], "x_s": x[batch:], "betas": betas, "step": step}


def _producer(make: Any, step: int, q: queue.Queue, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            item: Any = make(step)
        except BaseException as e:  # handed to the consumer, which re-raises it
            item = _Failure(e)
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        if isinstance(item, _Failure):
            return
        step += 1


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class TrainBatches:
    """Infinite iterator of training batches for steps ``start_step, start_step + 1, ...``.

    See the module docstring for the contents of each batch. ``prefetch`` batches are prepared by a
    daemon thread (``prefetch=0``: no thread, batches are made in ``__next__``). Errors raised while
    preparing a batch are re-raised by ``__next__``. Use ``close()`` or a ``with`` block to stop the
    thread. ``num_images`` is the number of usable images of this shard (tfds: records, -1 if unknown).
    ``split``, ``reservoir`` and ``data_dir`` only matter for tfds sources.
    """

    def __init__(
        self,
        source: str,
        size: int,
        batch: int,
        seed: int,
        start_step: int = 0,
        shard_index: int = 0,
        shard_count: int = 1,
        prefetch: int = 2,
        *,
        split: str = "train",
        reservoir: int = 512,
        data_dir: str | None = None,
        style_source: str = "",
        crop_min: float = 0.0,
    ):
        if size < 1 or batch < 1 or seed < 0 or start_step < 0 or prefetch < 0 or reservoir < 1:
            raise ValueError(f"TrainBatches: need size, batch, reservoir >= 1 and seed, start_step, prefetch >= 0 (got size={size}, batch={batch}, seed={seed}, start_step={start_step}, prefetch={prefetch}, reservoir={reservoir})")
        if not 0.0 <= crop_min <= 1.0:
            raise ValueError(f"TrainBatches: crop_min must be in [0, 1] (0: centre squares), got {crop_min}")
        _check_shard(shard_index, shard_count)
        self.source, self.size, self.batch, self.seed = source, size, batch, seed
        self.shard_index, self.shard_count = shard_index, shard_count
        make_pool = lambda src: _make_pool(src, size, 2 * batch, reservoir, split, shard_index, shard_count, data_dir, crop_min > 0)  # noqa: E731
        self._pool = make_pool(source)
        self._style_pool = make_pool(style_source) if style_source and style_source != source else None
        self.num_images = self._pool.num_images
        self.num_style_images = self._style_pool.num_images if self._style_pool else self.num_images
        self._make = functools.partial(
            _make_batch, self._pool, batch=batch, seed=seed, shard_index=shard_index,
            style_pool=self._style_pool, size=size, crop_min=crop_min,
        )
        self._step = start_step
        self._error: BaseException | None = None
        self._closed = False
        self._stop = threading.Event()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if prefetch > 0:
            self._queue = queue.Queue(maxsize=prefetch)
            self._thread = threading.Thread(
                target=_producer,
                args=(self._make, start_step, self._queue, self._stop),
                name="TrainBatches-prefetch",
                daemon=True,
            )
            self._thread.start()

    def __iter__(self) -> TrainBatches:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise StopIteration
        if self._queue is None:
            item: Any = self._make(self._step)
        else:
            while True:
                try:
                    item = self._queue.get(timeout=1.0)
                    break
                except queue.Empty:
                    if self._thread is not None and not self._thread.is_alive():
                        raise RuntimeError("TrainBatches: the prefetch thread died") from None
        if isinstance(item, _Failure):
            self._error = item.error
            self.close()
            raise item.error
        self._step += 1
        return item

    def close(self) -> None:
        """Stop the prefetch thread (idempotent). Iterating afterwards raises StopIteration."""
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            if self._queue is not None:
                try:
                    while True:
                        self._queue.get_nowait()
                except queue.Empty:
                    pass
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> TrainBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _fixed_squares(source: str, size: int, count: int, rng: np.random.Generator, split: str, data_dir: str | None) -> list[np.ndarray]:
    """Up to ``count`` decodable centre squares of ``source``: a seeded permutation of a folder's
    files, or (shuffled) the first ``count`` decodable records of a tfds ``split``."""
    kind, wheres = _parse_sources(source)
    squares: list[np.ndarray] = []
    if kind == "folder":
        paths = [p for folder in wheres for p in images.list_images(folder, recursive=True)]
        for i in rng.permutation(len(paths)):
            r = _try_square(paths[i], size)
            if isinstance(r, str):
                warnings.warn(f"skipping unreadable image {paths[i]}: {r}", stacklevel=3)
                continue
            squares.append(r)
            if len(squares) == count:
                break
    else:
        ds = _tfds_dataset(wheres[0], split, 0, 1, data_dir)
        import tensorflow_datasets as tfds

        for rec, data in enumerate(tfds.as_numpy(ds)):
            try:
                squares.append(load_square(bytes(data), size))
            except (ImageError, ValueError) as e:
                warnings.warn(f"skipping undecodable image, record {rec} of {source}: {e}", stacklevel=3)
            if len(squares) == count:
                break
        squares = [squares[i] for i in rng.permutation(len(squares))]
    if not squares:
        raise DataError(f"no readable image in {source!r}; {_FORMS}")
    return squares


def fixed_pairs(
    source: str,
    size: int,
    n: int,
    seed: int,
    *,
    split: str = "validation",
    data_dir: str | None = None,
    style_source: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """A fixed validation set: float32 ``(x_c, x_s)``, each ``(n, size, size, 3)``, no noise.

    Only ``2n`` images are decoded: folder sources take a seeded permutation of the files; tfds
    sources take the first ``2n`` decodable records of ``split`` (default ``validation``, e.g.
    COCO val). With at least ``2n`` images the ``2n`` images are all different; with fewer, pairs
    are drawn with content != style (unless there is only one image). With a ``style_source``
    (a single source) the ``n`` contents come from ``source`` and the ``n`` styles from it,
    cycled when it holds fewer.
    """
    if n < 1 or size < 1 or seed < 0:
        raise ValueError(f"fixed_pairs: need n, size >= 1 and seed >= 0, got n={n}, size={size}, seed={seed}")
    rng = np.random.default_rng([seed, _FIXED_TAG])
    to_float = lambda squares: np.stack(squares).astype(np.float32) / np.float32(255)  # noqa: E731
    if style_source and style_source != source:
        contents = _fixed_squares(source, size, n, rng, split, data_dir)
        styles = _fixed_squares(style_source, size, n, rng, split, data_dir)
        pick = lambda squares: [squares[i % len(squares)] for i in range(n)]  # noqa: E731
        return to_float(pick(contents)), to_float(pick(styles))
    squares = _fixed_squares(source, size, 2 * n, rng, split, data_dir)
    m = len(squares)
    pool = to_float(squares)
    if m >= 2 * n:
        return pool[:n], pool[n : 2 * n]
    ic = rng.integers(0, m, size=n)
    is_ = (ic + rng.integers(1, m, size=n)) % m if m > 1 else ic
    return pool[ic], pool[is_]
