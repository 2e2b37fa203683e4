"""Image data: tfds data sets, image folders and synthetic data, held in memory as uint8.

`load_dataset(spec, split, image_size)` returns an `ImageDataset` (uint8 NHWC images and int32
labels in host memory); `BatchIterator` turns it into training batches. The data set specs:

* ``'cifar10'`` or any tfds name (``'mnist'``, ``'cifar10:3.0.2'``): `tfds.load`, which
  downloads and prepares the data set where there is internet (``data_dir`` as tfds takes it);
* ``'folder:PATH'``: a `tfds.ImageFolder` tree ``PATH/<split>/<class>/<image files>``;
* ``'synthetic'`` or ``'synthetic:N'``: N (default 1024) deterministic random images in 10
  classes, each class with its own colours and stripe pattern, for tests and benchmarks.

Splits take tfds's slicing syntax for every kind of data set: ``'train[:10%]'`` (the first 10 %),
``'train[1000:2000]'``, ``'train[-10%:]'``; percentages round to the closest example as tfds's
default ``rounding='closest'`` does. tfds data sets slice in tfds; image folders and synthetic
data slice their examples in their fixed order (`tfds.ImageFolder`'s deterministic shuffle of
each split, so a slice mixes the classes; the synthetic generation order).

Images are converted to RGB and, when their size differs from `image_size`, centre-cropped to a
square and resized (area averaging). Inside the library images are float32 in [-1, 1]: the
iterator converts each batch with `to_float`.

Batch order: the examples of the training stream are the concatenation of one permutation of
the data set per epoch, drawn from (seed, epoch). The examples of training step t are positions
[t * n_critic * B, (t + 1) * n_critic * B) of that stream, so the batches of a step are a pure
function of (seed, step): a resumed run sees exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import re
import threading
from typing import Callable, Iterator

import numpy as np

from ganjax.errors import DataError

DEFAULT_SYNTHETIC_SIZE = 1024
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """A labelled image data set in host memory.

  Attributes:
    images: uint8 [N, H, W, 3].
    labels: int32 [N], in [0, num_classes).
    class_names: one name per class.
    source: the spec and split it was loaded from.
  """

  images: np.ndarray
  labels: np.ndarray
  class_names: tuple[str, ...]
  source: str

  def __len__(self) -> int:
    return len(self.images)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def to_uint8(images) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255] (rounded, clipped)."""
  images = np.asarray(images, np.float32)
  return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


# -- sources ----------------------------------------------------------------------------------


def _tf():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")  # TF only feeds data; keep accelerators for JAX
  return tf


def _standardize(tf, image, image_size: int):
  """Any HxWxC uint8 image -> image_size x image_size x 3 uint8 (crop to square, resize)."""
  # Grey (1 channel) -> RGB by repetition; RGBA -> RGB by dropping alpha.
  image = tf.cond(tf.shape(image)[-1] < 3, lambda: tf.tile(image[..., :1], [1, 1, 3]),
                  lambda: image[..., :3])
  h, w = tf.shape(image)[0], tf.shape(image)[1]

  def crop_and_resize():
    side = tf.minimum(h, w)
    square = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
    resized = tf.image.resize(square, (image_size, image_size), method="area")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

  same = tf.logical_and(tf.equal(h, image_size), tf.equal(w, image_size))
  image = tf.cond(same, lambda: tf.cast(image, tf.uint8), crop_and_resize)
  return tf.ensure_shape(image, (image_size, image_size, 3))


def _to_numpy(ds, image_size: int, has_label: bool) -> tuple[np.ndarray, np.ndarray]:
  tf = _tf()
  ds = ds.map(lambda ex: (_standardize(tf, ex["image"], image_size),
                          tf.cast(ex["label"], tf.int32) if has_label else tf.constant(0)),
              num_parallel_calls=tf.data.AUTOTUNE)
  images, labels = [], []
  for x, y in ds.batch(1024).prefetch(2).as_numpy_iterator():
    images.append(x)
    labels.append(y)
  if not images:
    return np.zeros((0, image_size, image_size, 3), np.uint8), np.zeros((0,), np.int32)
  return np.concatenate(images), np.concatenate(labels).astype(np.int32)


_SLICE = re.compile(r"^(?P<name>[^\[\]]+)(?:\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")


def parse_split(split: str) -> tuple[str, str | None, str | None]:
  """``'train[:10%]'`` -> ('train', None, '10%'); ``'test'`` -> ('test', None, None).

  One slice of ints or percentages, as tfds writes it; anything else is a one-line DataError
  (tfds data sets take tfds's whole split syntax, unions included, from tfds itself).
  """
  match = _SLICE.match(split.strip())
  if not match:
    raise DataError(f"split {split!r} is not NAME or NAME[START:STOP] (ints or percentages, "
                    f"e.g. 'train[:10%]', 'train[1000:2000]')")
  return match["name"], match["start"], match["stop"]


def _boundary(text: str | None, size: int, default: int) -> int:
  if text is None:
    return default
  if text.endswith("%"):
    percent = int(text[:-1])
    if not -100 <= percent <= 100:
      raise DataError(f"split percentage {text!r} is outside [-100%, 100%]")
    value = int(round(percent * size / 100.0))  # tfds rounding='closest'
  else:
    value = int(text)
  if value < 0:
    value += size
  return min(max(value, 0), size)


def slice_range(split: str, size: int) -> tuple[int, int]:
  """The [start, stop) example range of `split` in a split of `size` examples."""
  _, start, stop = parse_split(split)
  return _boundary(start, size, 0), _boundary(stop, size, size)


def _sliced(dataset: ImageDataset, split: str) -> ImageDataset:
  """`dataset` (a whole split) cut to `split`'s slice, if it has one."""
  _, start_text, stop_text = parse_split(split)
  if start_text is None and stop_text is None:
    return dataset
  start, stop = slice_range(split, len(dataset))
  source = dataset.source.rpartition(":")[0] + f":{split}"
  return ImageDataset(dataset.images[start:stop], dataset.labels[start:stop],
                      dataset.class_names, source)


def _find_unreadable(files: list[str]) -> str | None:
  tf = _tf()
  for f in files:
    try:
      tf.io.decode_image(tf.io.read_file(f), channels=3, expand_animations=False)
    except Exception:  # pylint: disable=broad-except
      return f
  return None


def _load_folder(path: str, split: str, image_size: int) -> ImageDataset:
  root = os.path.expanduser(path)
  if not os.path.isdir(root):
    raise DataError(f"image folder {root!r} does not exist")
  split_dir = os.path.join(root, split)
  if not os.path.isdir(split_dir):
    found = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    raise DataError(f"image folder {root!r} has no split {split!r} (expected "
                    f"{root}/{split}/<class>/<images>; found splits {found})")
  files = sorted(os.path.join(dirpath, f) for dirpath, _, names in os.walk(split_dir)
                 for f in names if f.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise DataError(f"image folder {split_dir!r} holds no images ({'/'.join(IMAGE_EXTENSIONS)}"
                    " files in class subfolders)")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tf = _tf()
  builder = tfds.ImageFolder(root)
  ds = builder.as_dataset(split=split, shuffle_files=False)
  try:
    images, labels = _to_numpy(ds, image_size, has_label=True)
  except tf.errors.OpError as e:
    bad = _find_unreadable(files)
    if bad is None:
      raise DataError(f"reading image folder {split_dir!r} failed: {e.message.splitlines()[0]}"
                      ) from None
    raise DataError(f"unreadable image {bad!r} in image folder {root!r}") from None
  names = tuple(builder.info.features["label"].names)
  return ImageDataset(images, labels, names, f"folder:{path}:{split}")


def _load_tfds(name: str, split: str, image_size: int, data_dir: str | None) -> ImageDataset:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  _tf()
  try:
    ds, info = tfds.load(name, split=split, data_dir=data_dir, with_info=True,
                         shuffle_files=False)
  except Exception as e:  # tfds raises many types (DatasetNotFoundError, download errors ...)
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise DataError(f"cannot load tfds data set {name!r} split {split!r}: {first_line}") from None
  features = info.features
  if "image" not in features:
    raise DataError(f"tfds data set {name!r} has no 'image' feature (it has {list(features)})")
  has_label = "label" in features and hasattr(features["label"], "names")
  images, labels = _to_numpy(ds, image_size, has_label)
  names = tuple(features["label"].names) if has_label else ("all",)
  return ImageDataset(images, labels, names, f"{name}:{split}")


def synthetic_images(num_images: int, image_size: int, *, num_classes: int = 10,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic labelled images: per-class colours and stripe orientation, plus noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, num_classes, num_images).astype(np.int32)
  palette = np.random.default_rng(12345).uniform(0.15, 0.85, (num_classes, 2, 3))
  coords = np.linspace(0.0, 2 * np.pi, image_size, endpoint=False)
  yy, xx = np.meshgrid(coords, coords, indexing="ij")
  angles = np.pi * np.arange(num_classes) / num_classes
  stripes = 0.5 + 0.5 * np.sin(2 * (np.cos(angles)[:, None, None] * xx +
                                    np.sin(angles)[:, None, None] * yy))  # [K, H, W]
  phase = rng.uniform(0.0, 1.0, (num_images, 1, 1, 1))
  mix = np.clip(stripes[labels][..., None] + 0.3 * (phase - 0.5), 0.0, 1.0)
  lo, hi = palette[labels, 0][:, None, None], palette[labels, 1][:, None, None]
  images = lo + (hi - lo) * mix + rng.normal(0.0, 0.06, (num_images, image_size, image_size, 3))
  return np.clip(np.rint(images * 255), 0, 255).astype(np.uint8), labels


def _load_synthetic(arg: str, split: str, image_size: int) -> ImageDataset:
  try:
    num_images = int(arg) if arg else DEFAULT_SYNTHETIC_SIZE
  except ValueError:
    raise DataError(f"synthetic data set size must be an integer, got {arg!r}") from None
  if num_images <= 0:
    raise DataError(f"synthetic data set size must be positive, got {num_images}")
  split_seed = {"train": 0, "test": 1}.get(split, 2)
  images, labels = synthetic_images(num_images, image_size, seed=split_seed)
  return ImageDataset(images, labels, tuple(f"class{i}" for i in range(10)),
                      f"synthetic:{num_images}:{split}")


def load_dataset(spec: str, split: str = "train", image_size: int = 32, *,
                 data_dir: str | None = None) -> ImageDataset:
  """Loads a data set named by a spec (see the module docstring) into memory."""
  if not spec:
    raise DataError("no data set given (config.dataset is empty)")
  kind, _, arg = spec.partition(":")
  if kind == "synthetic":
    dataset = _sliced(_load_synthetic(arg, parse_split(split)[0], image_size), split)
  elif kind == "folder":
    if not arg:
      raise DataError("folder data set needs a path: 'folder:PATH'")
    dataset = _sliced(_load_folder(arg, parse_split(split)[0], image_size), split)
  else:
    dataset = _load_tfds(spec, split, image_size, data_dir)
  if not len(dataset):
    raise DataError(f"data set {dataset.source!r} is empty")
  return dataset


# -- batches ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batch_indices(num_examples: int, *, seed: int, step: int, batch_size: int,
                  n_critic: int = 1) -> np.ndarray:
  """Indices of the examples of training step `step`: int [n_critic, batch_size].

  Position p of the training stream holds example ``perm(seed, p // N)[p % N]``, where
  ``perm(seed, e)`` is epoch e's permutation; step t takes positions
  ``[t * n_critic * B, (t + 1) * n_critic * B)``.
  """
  per_step = n_critic * batch_size
  positions = step * per_step + np.arange(per_step, dtype=np.int64)
  epochs, offsets = np.divmod(positions, num_examples)
  indices = np.empty(per_step, np.int64)
  for epoch in np.unique(epochs):
    sel = epochs == epoch
    indices[sel] = _epoch_permutation(seed, int(epoch), num_examples)[offsets[sel]]
  return indices.reshape(n_critic, batch_size)


Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def training_batch(dataset: ImageDataset, *, seed: int, step: int, batch_size: int,
                   n_critic: int = 1, process_index: int = 0, process_count: int = 1,
                   transform: Transform | None = None) -> dict[str, np.ndarray]:
  """This process's part of the global batch of step `step`.

  Returns ``{'image': float32 [n_critic, B / process_count, H, W, C] in [-1, 1], 'label': int32
  [n_critic, B / process_count]}``. `transform` (data augmentation) maps uint8 images and a
  generator seeded from (seed, step, process) to uint8 images.
  """
  if batch_size % process_count:
    raise DataError(f"batch size {batch_size} is not divisible by the {process_count} processes")
  local = batch_size // process_count
  idx = batch_indices(len(dataset), seed=seed, step=step, batch_size=batch_size,
                      n_critic=n_critic)[:, process_index * local:(process_index + 1) * local]
  images = dataset.images[idx]
  if transform is not None:
    rng = np.random.default_rng([seed, step, process_index, 1])
    flat = transform(images.reshape((-1,) + images.shape[2:]), rng)
    images = flat.reshape(images.shape)
  return {"image": to_float(images), "label": dataset.labels[idx]}


class BatchIterator:
  """Yields ``(step, batch)`` from `start_step` on, prepared ahead in a background thread."""

  def __init__(self, dataset: ImageDataset, *, seed: int, batch_size: int, n_critic: int = 1,
               start_step: int = 0, process_index: int = 0, process_count: int = 1,
               transform: Transform | None = None, prefetch: int = 2):
    self._make = functools.partial(
        training_batch, dataset, seed=seed, batch_size=batch_size, n_critic=n_critic,
        process_index=process_index, process_count=process_count, transform=transform)
    self._make(step=start_step)  # fail here, in the caller's thread, on bad arguments
    self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._fill, args=(start_step,), daemon=True)
    self._thread.start()

  def _fill(self, step: int) -> None:
    while not self._stop.is_set():
      try:
        item = (step, self._make(step=step))
      except Exception as e:  # pylint: disable=broad-except  # re-raised in the consumer
        item = e
      while not self._stop.is_set():
        try:
          self._queue.put(item, timeout=0.1)
          break
        except queue.Full:
          continue
      if isinstance(item, Exception):
        return
      step += 1

  def __iter__(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    return self

  def __next__(self) -> tuple[int, dict[str, np.ndarray]]:
    item = self._queue.get()
    if isinstance(item, Exception):
      raise item
    return item

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=5)


def iterate_in_order(dataset: ImageDataset, batch_size: int,
                     limit: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """The first `limit` (default all) examples in stored order, as uint8 image / label batches."""
  end = len(dataset) if limit is None else min(limit, len(dataset))
  for start in range(0, end, batch_size):
    stop = min(start + batch_size, end)
    yield dataset.images[start:stop], dataset.labels[start:stop]
