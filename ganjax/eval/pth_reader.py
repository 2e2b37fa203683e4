"""Reads a PyTorch state dict (``.pth``, e.g. pytorch-fid's Inception weights) without torch.

`read_state_dict(path)` returns ``{name: np.ndarray}`` equal to ``{k: v.numpy() for k, v in
torch.load(path).items()}`` (same dtypes, shapes and values) and never executes pickled code.

Formats (``torch/serialization.py``):

* zip (torch >= 1.6): ``<dir>/data.pkl`` is the pickled dict, each storage is the record
  ``<dir>/data/<key>`` (raw bytes, ``<dir>/byteorder`` ``little`` or ``big``, little if absent).
* legacy (``_use_new_zipfile_serialization=False``, files from torch < 1.6): a stream of pickles
  (magic number ``0x1950a86a20f9469cfc6c``, protocol version 1001, system info, the dict, the
  sorted list of storage keys) followed by the storages in that order, each an int64 element
  count and the raw bytes (byte order from the system info).

The pickles are read with a restricted unpickler: ``find_class`` resolves only the globals a
dict of tensors needs, each to a local stand-in (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` / ``_rebuild_tensor`` / ``_rebuild_parameter`` and the
``torch.<Type>Storage`` classes); any other global raises `ConfigError` naming it, before anything
is called. Storages (``persistent_load`` ids ``('storage', type, key, location, numel[, view])``)
are read with numpy in the storage type's dtype; a tensor is the strided view
``as_strided(storage[offset:], size, stride * itemsize)`` (bounds checked first), copied.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from typing import Any, Callable

import numpy as np

from ganjax.errors import ConfigError

LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16",
    "BFloat16Storage": "bfloat16",
}
_KEY = re.compile(r"[A-Za-z0-9_.]+")


def _fail(path: str, message: str) -> ConfigError:
  return ConfigError(f"cannot read {path}: {message}".replace("\n", " "))


def _no_state(obj: Any, state: Any):
  del state
  raise ConfigError(f"the pickle sets the state of a {type(obj).__name__.lstrip('_')}, which a "
                    "state dict does not")


class _StorageType:
  """Stand-in for a ``torch.<Type>Storage`` class: only its name and element dtype."""

  __slots__ = ("name",)
  __setstate__ = _no_state

  def __init__(self, name: str):
    self.name = name

  def dtype(self, path: str) -> np.dtype:
    code = _STORAGE_DTYPES[self.name]
    if code == "bfloat16":
      try:
        import ml_dtypes  # pylint: disable=g-import-not-at-top
      except ImportError:
        raise _fail(path, "bfloat16 tensors need the ml_dtypes package") from None
      return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(code)


class _Storage:
  """A storage named by a persistent id: its key, dtype, length and (legacy) view offset."""

  __slots__ = ("key", "dtype", "numel", "view_offset", "view_numel")
  __setstate__ = _no_state

  def __init__(self, key: str, dtype: np.dtype, numel: int, view_offset: int = 0,
               view_numel: int | None = None):
    self.key, self.dtype, self.numel = key, dtype, numel
    self.view_offset = view_offset
    self.view_numel = numel if view_numel is None else view_numel


class _Tensor:
  """A tensor to build once the storages are read: storage, offset, size, stride."""

  __slots__ = ("storage", "offset", "size", "stride")
  __setstate__ = _no_state

  def __init__(self, storage: Any, offset: Any, size: Any, stride: Any):
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class _OrderedDict(dict):
  """Stand-in for ``collections.OrderedDict`` (dicts keep order); instance state is ignored."""

  def __setstate__(self, state: Any):
    if not isinstance(state, dict):
      raise ConfigError(f"an OrderedDict in the pickle has state of type {type(state).__name__}")


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None,
                       metadata: Any = None) -> _Tensor:
  del requires_grad, backward_hooks
  if metadata:
    raise ConfigError(f"a tensor in the pickle has metadata {sorted(metadata)!r}, which plain "
                      "tensors do not")
  return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _Tensor:
  return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
  del requires_grad, backward_hooks
  return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only `_ALLOWED_GLOBALS`; storages through `storage_from_id`."""

  def __init__(self, file: Any, path: str, storage_from_id: Callable[[Any], _Storage] | None):
    super().__init__(file)
    self._path = path
    self._storage_from_id = storage_from_id

  def find_class(self, module: str, name: str) -> Any:
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except (KeyError, TypeError):
      raise _fail(self._path, f"refusing the global {module}.{name}: a state dict of tensors "
                  "does not need it") from None

  def persistent_load(self, pid: Any) -> Any:
    if self._storage_from_id is None:
      raise _fail(self._path, "unexpected persistent id in the pickle header")
    return self._storage_from_id(pid)


def _text(value: Any) -> Any:
  return value.decode("ascii") if isinstance(value, bytes) else value


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _storage_parser(path: str, legacy: bool) -> tuple[Callable[[Any], _Storage],
                                                       dict[str, _Storage]]:
  """A persistent_load for the format and the dict of root storages it fills."""
  roots: dict[str, _Storage] = {}

  def parse(pid: Any) -> _Storage:
    if not isinstance(pid, tuple) or not pid or _text(pid[0]) != "storage":
      kind = _text(pid[0]) if isinstance(pid, tuple) and pid else type(pid).__name__
      raise _fail(path, f"refusing persistent id {kind!r}: only storages are read")
    fields = pid[1:]
    if len(fields) != (5 if legacy else 4):
      raise _fail(path, f"malformed storage id of {len(fields)} fields")
    storage_type, key, _, numel = fields[:4]
    key = _text(key)
    view = fields[4] if legacy else None
    if not isinstance(storage_type, _StorageType):
      raise _fail(path, "a storage id without a storage type")
    if not isinstance(key, str) or not _KEY.fullmatch(key) or not _is_int(numel) or numel < 0:
      raise _fail(path, f"malformed storage id (key {key!r}, size {numel!r})")
    dtype = storage_type.dtype(path)
    root = roots.setdefault(key, _Storage(key, dtype, numel))
    if root.dtype != dtype or root.numel != numel:
      raise _fail(path, f"storage {key} is referenced with two types or sizes")
    if view is None:
      return root
    if (not isinstance(view, tuple) or len(view) != 3 or not _is_int(view[1])
        or not _is_int(view[2]) or view[1] < 0 or view[2] < 0 or view[1] + view[2] > numel):
      raise _fail(path, f"malformed storage view {view!r}")
    return _Storage(key, dtype, numel, view[1], view[2])

  return parse, roots


def _array(path: str, name: str, tensor: _Tensor, data: dict[str, np.ndarray]) -> np.ndarray:
  """The tensor's values: a bounds-checked strided view of its storage, copied."""
  storage, offset, size, stride = tensor.storage, tensor.offset, tensor.size, tensor.stride
  if not isinstance(storage, _Storage):
    raise _fail(path, f"tensor {name!r} has no storage")
  if (not _is_int(offset) or not isinstance(size, tuple) or not isinstance(stride, tuple)
      or len(size) != len(stride) or not all(_is_int(v) for v in size + stride)
      or offset < 0 or min(size + stride, default=0) < 0):
    raise _fail(path, f"tensor {name!r} has a malformed layout (offset {offset!r}, size "
                f"{size!r}, stride {stride!r})")
  flat = data[storage.key][storage.view_offset:storage.view_offset + storage.view_numel]
  native = flat.dtype.newbyteorder("=")
  if 0 in size:
    return np.empty(size, native)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= len(flat):
    raise _fail(path, f"tensor {name!r} reaches element {last} of a storage of {len(flat)}")
  view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                         strides=[s * flat.itemsize for s in stride],
                                         writeable=False)
  return np.array(view, dtype=native, copy=True)


def _arrays(path: str, obj: Any, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  if not isinstance(obj, dict):
    raise _fail(path, f"the file holds a {type(obj).__name__}, not a state dict")
  result = {}
  for name, value in obj.items():
    value = value if isinstance(value, _Tensor) else None
    if not isinstance(name, str) or value is None:
      raise _fail(path, f"entry {name!r} is not a tensor named by a string")
    result[name] = _array(path, name, value, data)
  return result


def _read_zip(path: str, archive: zipfile.ZipFile) -> dict[str, np.ndarray]:
  names = archive.namelist()
  pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
  if len(pickles) != 1:
    raise _fail(path, "a zip archive without a single <dir>/data.pkl: not a torch.save file")
  prefix = pickles[0][:-len("data.pkl")]
  order = "<"
  if prefix + "byteorder" in names:
    byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
    if byteorder not in ("little", "big"):
      raise _fail(path, f"unknown byte order {byteorder!r}")
    order = "<" if byteorder == "little" else ">"
  parse, roots = _storage_parser(path, legacy=False)
  obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path, parse).load()
  data = {}
  for key, storage in roots.items():
    record = f"{prefix}data/{key}"
    if record not in names:
      raise _fail(path, f"missing storage record {record}")
    dtype = storage.dtype.newbyteorder(order)
    raw = archive.read(record)
    if len(raw) != storage.numel * dtype.itemsize:
      raise _fail(path, f"storage {key} has {len(raw)} bytes, expected "
                  f"{storage.numel * dtype.itemsize}")
    data[key] = np.frombuffer(raw, dtype)
  return _arrays(path, obj, data)


def _read_legacy(path: str, file: io.BufferedReader) -> dict[str, np.ndarray]:
  def header() -> Any:
    return _RestrictedUnpickler(file, path, None).load()

  try:
    magic = header()
  except ConfigError:
    raise
  except Exception:  # pylint: disable=broad-except  # not a pickle at all
    raise _fail(path, "neither a zip archive nor a legacy torch.save file") from None
  if magic != LEGACY_MAGIC_NUMBER:
    raise _fail(path, "neither a zip archive nor a legacy torch.save file (bad magic number)")
  if header() != LEGACY_PROTOCOL_VERSION:
    raise _fail(path, "unsupported legacy torch.save protocol version")
  sys_info = header()
  if not isinstance(sys_info, dict):
    raise _fail(path, "malformed legacy system info")
  order = "<" if sys_info.get("little_endian", True) else ">"
  parse, roots = _storage_parser(path, legacy=True)
  obj = _RestrictedUnpickler(file, path, parse).load()
  keys = header()
  if not isinstance(keys, list) or sorted(map(_text, keys)) != sorted(roots):
    raise _fail(path, "the legacy storage key list does not match the storages")
  data = {}
  for key in map(_text, keys):
    dtype = roots[key].dtype.newbyteorder(order)
    count = np.frombuffer(file.read(8), np.dtype("i8").newbyteorder(order))
    if count.size != 1 or int(count[0]) != roots[key].numel:
      raise _fail(path, f"legacy storage {key} has a bad size header")
    raw = file.read(roots[key].numel * dtype.itemsize)
    if len(raw) != roots[key].numel * dtype.itemsize:
      raise _fail(path, f"legacy storage {key} is truncated")
    data[key] = np.frombuffer(raw, dtype)
  return _arrays(path, obj, data)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """The tensors of a ``torch.save``d state dict as numpy arrays, without torch or pickled code.

  Raises `ConfigError` (one line) for a missing file, another format, or any pickled global
  besides those a dict of tensors needs (named in the message; it is never called).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ConfigError(f"cannot read {path}: no such file")
  try:
    if zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as archive:
        return _read_zip(path, archive)
    with open(path, "rb") as file:
      return _read_legacy(path, file)
  except ConfigError as e:
    if str(e).startswith(f"cannot read {path}:"):
      raise
    raise _fail(path, str(e)) from None
  except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError,
          KeyError, IndexError, AttributeError, OverflowError, MemoryError) as e:
    raise _fail(path, f"{type(e).__name__}: {e}") from None
