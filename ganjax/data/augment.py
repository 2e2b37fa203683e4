"""Data augmentation as numpy transforms of uint8 batches (the `ganjax.data` transform hook).

`random_crop_flip(pad, mode)` is the standard CIFAR-10 augmentation (He et al., "Deep Residual
Learning for Image Recognition", CVPR 2016, section 4.2): pad each image by ``pad`` pixels on
every side, take a random ``H x W`` crop of the padded image and flip it horizontally with
probability 1/2. ``mode='constant'`` pads with zeros (black; torchvision's
``RandomCrop(32, padding=4)`` default), ``'reflect'`` mirrors the border pixels.

A transform maps ``(images uint8 [N, H, W, C], rng: np.random.Generator) -> uint8 [N, H, W, C]``;
`ganjax.data.training_batch` seeds the generator from (seed, step, process), so augmented
batches are a pure function of (seed, step) like the unaugmented ones.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ganjax.data.datasets import Transform
from ganjax.errors import ConfigError

PADDING_MODES = ("constant", "reflect")


def crop_flip(images: np.ndarray, offsets: np.ndarray, flips: np.ndarray, pad: int,
              mode: str = "constant") -> np.ndarray:
  """Crops image i of the padded batch at ``offsets[i] = (dy, dx)`` and mirrors it if ``flips[i]``.

  Output pixel (y, x) of image i is padded pixel (y + dy, x + dx), or (y + dy, W - 1 - x + dx)
  when flipped, where the padded image is `np.pad` of the input by `pad` with `mode`.
  """
  if mode not in PADDING_MODES:
    raise ConfigError(f"unknown padding mode {mode!r}; choose one of {list(PADDING_MODES)}")
  n, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)
  rows = offsets[:, 0, None] + np.arange(h)[None]                       # [N, H]
  cols = np.where(flips[:, None], np.arange(w)[::-1][None], np.arange(w)[None])
  cols = offsets[:, 1, None] + cols                                     # [N, W]
  return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def random_crop_flip(pad: int = 4, mode: str = "constant", flip: bool = True) -> Transform:
  """The transform: random crop after `pad`-pixel padding, then a random horizontal flip."""
  if mode not in PADDING_MODES:
    raise ConfigError(f"unknown padding mode {mode!r}; choose one of {list(PADDING_MODES)}")
  if pad < 0:
    raise ConfigError(f"crop padding must be >= 0, got {pad}")

  def transform(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = images.shape[0]
    offsets = rng.integers(0, 2 * pad + 1, (n, 2))
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    return crop_flip(images, offsets, flips, pad, mode)

  return transform


def from_config(section: Mapping[str, object]) -> Transform | None:
  """The transform of an ``augment`` config section (``crop_padding``, ``padding_mode``,
  ``flip``), or None when it does nothing."""
  pad, flip = int(section["crop_padding"]), bool(section["flip"])
  if pad == 0 and not flip:
    return None
  return random_crop_flip(pad, str(section["padding_mode"]), flip)
