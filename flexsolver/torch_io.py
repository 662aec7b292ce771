"""Read PyTorch ``.pth`` state dicts into numpy without importing torch.

Two on-disk formats exist:

* **legacy** (torch < 1.6, e.g. AdaIN's ``vgg_normalised.pth``): a stream of pickles — magic
  number, protocol version, system info, the object itself (tensors refer to storages through
  ``persistent_id``), the list of storage keys — followed by each storage as an int64 element
  count and its raw little-endian bytes.
* **zip** (torch >= 1.6, e.g. torchvision's ``vgg19-dcbb9e9d.pth``): ``<name>/data.pkl`` with the
  same ``persistent_id`` scheme and one file ``<name>/data/<key>`` per storage.

Only what a state dict needs is supported: ordered dicts of dense, strided tensors.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class TorchFormatError(ValueError):
    """The file is not a PyTorch state dict this reader understands."""


class _StorageType:
    def __init__(self, name: str):
        if name not in _STORAGE_DTYPES:
            raise TorchFormatError(f"unsupported tensor storage type torch.{name}")
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    """numpy counterpart of ``torch._utils._rebuild_tensor_v2``."""
    itemsize = storage.dtype.itemsize
    if len(size) == 0:
        return np.array(storage[storage_offset])
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=tuple(size),
        strides=tuple(s * itemsize for s in stride),
        writeable=False,
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, *_unused):
    return data


class _Unpickler(pickle.Unpickler):
    """Resolves the few torch globals a state dict pickles; refuses everything else."""

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        raise TorchFormatError(f"unsupported object {module}.{name} in a PyTorch file")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchFormatError(f"unsupported persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        return self._load_storage(key, storage_type.dtype, numel)


def _load_zip(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise TorchFormatError(f"{path}: zip file without data.pkl, not a PyTorch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]

        def load_storage(key, dtype, numel):
            raw = archive.read(f"{prefix}data/{key}")
            return np.frombuffer(raw, dtype=dtype, count=numel)

        return _Unpickler(io.BytesIO(archive.read(pkl[0])), load_storage).load()


def _load_legacy(path: Path) -> dict:
    with open(path, "rb") as f:
        try:
            magic = pickle.load(f)
        except Exception as e:  # noqa: BLE001 - any failure means "not this format"
            raise TorchFormatError(f"{path}: not a PyTorch file ({type(e).__name__})") from None
        if magic != LEGACY_MAGIC:
            raise TorchFormatError(f"{path}: not a PyTorch file (bad magic number)")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise TorchFormatError(f"{path}: big-endian PyTorch files are not supported")
        pending: dict[str, tuple[np.dtype, int]] = {}
        storages: dict[str, np.ndarray] = {}

        def load_storage(key, dtype, numel):
            # Storages are only known after the main pickle; hand out a placeholder view.
            if key not in storages:
                storages[key] = np.empty(numel, dtype=dtype)
                pending[key] = (dtype, numel)
            return storages[key]

        # Tensors must be rebuilt after their storage is filled, so defer _rebuild_tensor.
        deferred = []

        class LegacyUnpickler(_Unpickler):
            def find_class(self, module, name):
                if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
                    def rebuild(storage, offset, size, stride, *rest):
                        holder = _Deferred(storage, offset, size, stride)
                        deferred.append(holder)
                        return holder
                    return rebuild
                return super().find_class(module, name)

        result = LegacyUnpickler(f, load_storage).load()
        keys = pickle.load(f)
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            dtype, expected = pending[str(key)]
            if numel != expected:
                raise TorchFormatError(f"{path}: storage {key} has {numel} elements, expected {expected}")
            data = f.read(numel * dtype.itemsize)
            if len(data) != numel * dtype.itemsize:
                raise TorchFormatError(f"{path}: file is truncated")
            storages[str(key)][:] = np.frombuffer(data, dtype=dtype)
    return _resolve(result)


class _Deferred:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)


def _resolve(obj):
    if isinstance(obj, _Deferred):
        return _rebuild_tensor(*obj.args)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
    return obj


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Returns ``{name: array}`` from a ``.pth`` file in either PyTorch format.

    Raises ``FileNotFoundError`` for a missing file and ``TorchFormatError`` for anything that is
    not a readable PyTorch state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    obj = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise TorchFormatError(f"{path}: not a state dict of tensors")
    return dict(obj)
