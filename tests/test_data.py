"""Data sources, the (seed, step) -> batch contract, and data errors."""

import os
import types

import numpy as np
from PIL import Image
import pytest

from ganjax import data
from ganjax.data import datasets
from ganjax.errors import DataError


def write_folder(root, split="train", classes=("cat", "dog"), per_class=3, size=(32, 32),
                 ext="png"):
  rng = np.random.default_rng(0)
  for c in classes:
    os.makedirs(os.path.join(root, split, c), exist_ok=True)
    for i in range(per_class):
      image = rng.integers(0, 256, size + (3,), dtype=np.uint8)
      Image.fromarray(image).save(os.path.join(root, split, c, f"{i}.{ext}"))
  return root


# -- the batch-order contract ------------------------------------------------------------------


def test_batch_indices_are_a_pure_function_of_seed_and_step():
  a = data.batch_indices(100, seed=3, step=7, batch_size=16, n_critic=5)
  datasets._epoch_permutation.cache_clear()
  b = data.batch_indices(100, seed=3, step=7, batch_size=16, n_critic=5)
  np.testing.assert_array_equal(a, b)
  assert a.shape == (5, 16)
  assert not np.array_equal(a, data.batch_indices(100, seed=4, step=7, batch_size=16,
                                                  n_critic=5))


def test_every_epoch_visits_every_example_once():
  n, batch = 10, 4  # batches straddle epoch boundaries
  stream = np.concatenate([data.batch_indices(n, seed=0, step=s, batch_size=batch).ravel()
                           for s in range(10)])  # 40 positions = 4 epochs
  for epoch in range(4):
    assert sorted(stream[epoch * n:(epoch + 1) * n]) == list(range(n))
  assert not np.array_equal(stream[:n], stream[n:2 * n])  # reshuffled per epoch


def test_critic_batches_are_consecutive_stream_positions():
  by_step = data.batch_indices(50, seed=1, step=2, batch_size=3, n_critic=2).ravel()
  flat = np.concatenate([data.batch_indices(50, seed=1, step=s, batch_size=6).ravel()
                         for s in range(3)])
  np.testing.assert_array_equal(by_step, flat[12:18])


def test_process_slices_assemble_the_global_batch():
  dataset = data.load_dataset("synthetic:64", "train", 8)
  whole = data.training_batch(dataset, seed=0, step=5, batch_size=8, n_critic=2)
  parts = [data.training_batch(dataset, seed=0, step=5, batch_size=8, n_critic=2,
                               process_index=i, process_count=4) for i in range(4)]
  np.testing.assert_array_equal(np.concatenate([p["image"] for p in parts], axis=1),
                                whole["image"])
  np.testing.assert_array_equal(np.concatenate([p["label"] for p in parts], axis=1),
                                whole["label"])
  assert whole["image"].dtype == np.float32 and whole["image"].shape == (2, 8, 8, 8, 3)
  assert -1.0 <= whole["image"].min() and whole["image"].max() <= 1.0


def test_iterator_matches_the_pure_function_from_any_start():
  dataset = data.load_dataset("synthetic:40", "train", 8)
  it = data.BatchIterator(dataset, seed=2, batch_size=4, n_critic=2, start_step=3)
  try:
    for expected_step in (3, 4, 5):
      step, batch = next(it)
      assert step == expected_step
      ref = data.training_batch(dataset, seed=2, step=step, batch_size=4, n_critic=2)
      np.testing.assert_array_equal(batch["image"], ref["image"])
  finally:
    it.close()


def test_uint8_float_round_trip():
  x = np.arange(256, dtype=np.uint8)
  f = data.to_float(x)
  assert f.min() == -1.0 and f.max() == 1.0
  np.testing.assert_array_equal(data.to_uint8(f), x)


# -- sources -----------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_labelled():
  a = data.load_dataset("synthetic:32", "train", 16)
  b = data.load_dataset("synthetic:32", "train", 16)
  np.testing.assert_array_equal(a.images, b.images)
  assert a.images.shape == (32, 16, 16, 3) and a.num_classes == 10
  test = data.load_dataset("synthetic:32", "test", 16)
  assert not np.array_equal(a.images, test.images)


def test_folder_loads_classes_and_labels(tmp_path):
  root = write_folder(str(tmp_path / "imgs"), per_class=3)
  dataset = data.load_dataset(f"folder:{root}", "train", 32)
  assert dataset.images.shape == (6, 32, 32, 3) and dataset.images.dtype == np.uint8
  assert dataset.class_names == ("cat", "dog")
  assert sorted(dataset.labels.tolist()) == [0, 0, 0, 1, 1, 1]
  # The pixels are the files' pixels.
  first = np.asarray(Image.open(os.path.join(root, "train", "cat", "0.png")))
  assert any(np.array_equal(first, im) for im in dataset.images)


def test_folder_images_of_another_size_are_cropped_and_resized(tmp_path):
  root = write_folder(str(tmp_path / "imgs"), per_class=1, size=(40, 48), ext="jpg")
  dataset = data.load_dataset(f"folder:{root}", "train", 16)
  assert dataset.images.shape == (2, 16, 16, 3)


def test_tfds_source_with_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=12):
    dataset = data.load_dataset("cifar10", "train", 32)
    grey = data.load_dataset("mnist", "test", 16)  # 28x28x1 -> 16x16x3
  assert dataset.images.shape == (12, 32, 32, 3) and dataset.num_classes == 10
  assert dataset.labels.dtype == np.int32 and dataset.source == "cifar10:train"
  assert grey.images.shape == (12, 16, 16, 3)
  np.testing.assert_array_equal(grey.images[..., 0], grey.images[..., 2])


# -- errors ------------------------------------------------------------------------------------


def test_missing_folder(tmp_path):
  with pytest.raises(DataError, match="image folder .*nope.* does not exist"):
    data.load_dataset(f"folder:{tmp_path}/nope", "train", 32)


def test_missing_split(tmp_path):
  root = write_folder(str(tmp_path / "imgs"), split="test", per_class=1)
  with pytest.raises(DataError, match="has no split 'train'.*found splits \\['test'\\]"):
    data.load_dataset(f"folder:{root}", "train", 32)


def test_empty_folder(tmp_path):
  os.makedirs(tmp_path / "imgs" / "train" / "cat")
  with pytest.raises(DataError, match="holds no images"):
    data.load_dataset(f"folder:{tmp_path}/imgs", "train", 32)


def test_unreadable_image_is_named(tmp_path):
  root = write_folder(str(tmp_path / "imgs"), per_class=2)
  bad = os.path.join(root, "train", "dog", "broken.jpg")
  with open(bad, "wb") as f:
    f.write(b"this is not a jpeg")
  with pytest.raises(DataError, match=f"unreadable image '{bad}'"):
    data.load_dataset(f"folder:{root}", "train", 32)


def test_unknown_tfds_name():
  with pytest.raises(DataError, match="cannot load tfds data set 'no_such_dataset_xyz'"):
    data.load_dataset("no_such_dataset_xyz", "train", 32)


def test_bad_synthetic_size():
  with pytest.raises(DataError, match="must be an integer"):
    data.load_dataset("synthetic:many", "train", 32)


# -- split slicing ------------------------------------------------------------------------------


@pytest.mark.parametrize("split,expected", [
    ("train", (0, 50)), ("train[:10%]", (0, 5)), ("train[10%:]", (5, 50)),
    ("train[3:7]", (3, 7)), ("train[-10%:]", (45, 50)), ("train[:-3]", (0, 47)),
    ("train[:100%]", (0, 50)), ("train[:]", (0, 50)),
])
def test_slice_range_follows_tfds(split, expected):
  assert datasets.slice_range(split, 50) == expected


def test_percent_slices_round_to_the_closest_example_as_tfds():
  tfds = pytest.importorskip("tensorflow_datasets")
  for n in (7, 13, 50, 1001):
    for pct in (1, 10, 15, 33, 50, 67, 99):
      instruction = tfds.core.ReadInstruction("train", to=pct, unit="%")
      absolute = instruction.to_absolute({"train": types.SimpleNamespace(num_examples=n)})[0]
      assert datasets.slice_range(f"train[:{pct}%]", n) == (0, n if absolute.to is None else absolute.to), (n, pct)


@pytest.mark.parametrize("split", ["train[", "train[1:2:3]", "train[a:b]", "train[:150%]",
                                   "train[:5]x"])
def test_bad_split_is_one_line(split):
  with pytest.raises(DataError) as e:
    datasets.slice_range(split, 10) if "%" in split else datasets.parse_split(split)
  assert "\n" not in str(e.value)


def test_synthetic_and_folder_slices(tmp_path):
  whole = data.load_dataset("synthetic:40", "train", 8)
  part = data.load_dataset("synthetic:40", "train[:10%]", 8)
  assert len(part) == 4 and part.source == "synthetic:40:train[:10%]"
  np.testing.assert_array_equal(part.images, whole.images[:4])
  root = write_folder(str(tmp_path / "f"), per_class=5)
  folder_whole = data.load_dataset(f"folder:{root}", "train", 32)
  folder_tail = data.load_dataset(f"folder:{root}", "train[-30%:]", 32)
  assert len(folder_tail) == 3 and folder_tail.source.endswith(":train[-30%:]")
  np.testing.assert_array_equal(folder_tail.images, folder_whole.images[-3:])
  np.testing.assert_array_equal(folder_tail.labels, folder_whole.labels[-3:])


def test_tfds_split_slicing_is_tfds_own(monkeypatch):
  """tfds data sets hand the split, slices and unions included, to tfds.load (its mock data
  ignores slices, so the test records what tfds is asked for)."""
  tfds = pytest.importorskip("tensorflow_datasets")
  asked = []
  load = tfds.load
  monkeypatch.setattr(tfds, "load", lambda name, split, **kw: asked.append(split) or load(
      name, split=split, **kw))
  with tfds.testing.mock_data(num_examples=20):
    part = data.load_dataset("cifar10", "train[:25%]+test[:1]", 32)
  assert asked == ["train[:25%]+test[:1]"] and part.source == "cifar10:train[:25%]+test[:1]"
