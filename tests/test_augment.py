"""Random crop after padding and horizontal flip: exact shifts of the padded image."""

import numpy as np
import pytest

from ganjax import data
from ganjax.data import augment
from ganjax.errors import ConfigError


def _images(n=6, size=8):
  return np.random.default_rng(0).integers(0, 256, (n, size, size, 3)).astype(np.uint8)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_crop_flip_is_a_window_of_the_padded_image(mode):
  images = _images()
  offsets = np.array([[0, 0], [8, 8], [3, 5], [0, 8], [8, 0], [4, 4]])
  flips = np.array([False, True, False, True, False, True])
  out = augment.crop_flip(images, offsets, flips, pad=4, mode=mode)
  for i, ((dy, dx), flip) in enumerate(zip(offsets, flips)):
    padded = np.pad(images[i], ((4, 4), (4, 4), (0, 0)), mode=mode)
    window = padded[dy:dy + 8, dx:dx + 8]
    np.testing.assert_array_equal(out[i], window[:, ::-1] if flip else window)
  # The centre offset without a flip is the identity; zero padding brings in black pixels.
  np.testing.assert_array_equal(out[5, :, ::-1], images[5])
  if mode == "constant":
    assert np.all(out[0, :4, :4] == 0)


def test_random_transform_outputs_shifted_or_flipped_windows_and_is_seeded():
  images = _images(n=16)
  transform = augment.random_crop_flip(pad=4, mode="reflect")
  out = transform(images, np.random.default_rng(7))
  assert out.dtype == np.uint8 and out.shape == images.shape
  np.testing.assert_array_equal(out, transform(images, np.random.default_rng(7)))
  seen_flip = seen_shift = False
  for i in range(len(images)):
    padded = np.pad(images[i], ((4, 4), (4, 4), (0, 0)), mode="reflect")
    matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
               if np.array_equal(out[i], padded[dy:dy + 8, dx:dx + 8][:, ::-1] if f else
                                 padded[dy:dy + 8, dx:dx + 8])]
    assert matches, f"image {i} is no window of its padded image"
    seen_flip |= any(f for _, _, f in matches)
    seen_shift |= any((dy, dx) != (4, 4) for dy, dx, _ in matches)
  assert seen_flip and seen_shift


def test_transform_through_training_batch_depends_on_seed_and_step_only():
  dataset = data.load_dataset("synthetic:32", "train", image_size=8)
  transform = augment.from_config({"crop_padding": 4, "padding_mode": "constant", "flip": True})
  a = data.training_batch(dataset, seed=1, step=3, batch_size=8, transform=transform)
  b = data.training_batch(dataset, seed=1, step=3, batch_size=8, transform=transform)
  c = data.training_batch(dataset, seed=1, step=4, batch_size=8, transform=transform)
  plain = data.training_batch(dataset, seed=1, step=3, batch_size=8)
  np.testing.assert_array_equal(a["image"], b["image"])
  np.testing.assert_array_equal(a["label"], plain["label"])
  assert not np.array_equal(a["image"], plain["image"]) and a["image"].shape == c["image"].shape
  assert augment.from_config({"crop_padding": 0, "flip": False}) is None
  with pytest.raises(ConfigError, match="padding mode"):
    augment.random_crop_flip(4, mode="wrap")
