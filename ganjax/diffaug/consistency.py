"""The augmentation T of balanced consistency regularization (bCR): random flip and translation.

Zhao, Singh, Lee, Zhang, Odena and Zhang, "Improved Consistency Regularization for GANs",
AAAI 2021 (arXiv:2002.04724): T flips the image horizontally and translates it by a few pixels.
This is PyTorch-StudioGAN's form of it (``src/utils/cr.py``, ``apply_diffaug4cr``, the ``bcr``
augmentation of its ICRGAN configs): each image is mirrored left-right with probability 1/2,
then translated by integers ``(dy, dx)``, each uniform in ``{-s..s}`` with ``s = floor(size /
8)`` per axis (4 pixels at 32x32), the image being reflection-padded by ``s`` (mirror without
repeating the edge pixel) so that no pixel is blank. Both steps are gathers, differentiable
with respect to the images.

Images are NHWC.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ganjax.diffaug import diffaugment

Array = jax.Array

FLIP_PROBABILITY = 0.5
TRANSLATION_RATIO = 0.125


def sample_flip(key: Array, images: Array) -> Array:
  """bool [N]: whether image n is mirrored (``U[0, 1) < 1/2``)."""
  return jax.random.uniform(key, (images.shape[0],)) < FLIP_PROBABILITY


def flip(images: Array, flags: Array) -> Array:
  """Mirrors image n left-right (along W) where ``flags[n]``."""
  return jnp.where(flags[:, None, None, None], images[:, :, ::-1], images)


def reflect_translation(images: Array, shift: Array, ratio: float = TRANSLATION_RATIO) -> Array:
  """``out[n, i, j] = x[n, r(i + dy_n), r(j + dx_n)]`` with ``r`` the reflection at the border.

  Args:
    images: [N, H, W, C].
    shift: int [N, 2], ``(dy, dx)`` with ``|dy| <= floor(H * ratio)``, ``|dx| <= floor(W *
      ratio)`` (`ganjax.diffaug.diffaugment.sample_translation`).
    ratio: the largest shift relative to the image size (the padding).
  """
  _, h, w, _ = images.shape
  sy = diffaugment.max_translation(h, ratio)
  sx = diffaugment.max_translation(w, ratio)
  padded = jnp.pad(images, ((0, 0), (sy, sy), (sx, sx), (0, 0)), mode="reflect")
  rows = jnp.arange(h)[None] + shift[:, 0:1] + sy                       # [N, H]
  cols = jnp.arange(w)[None] + shift[:, 1:2] + sx                       # [N, W]
  return jax.vmap(lambda x, r, c: x[r[:, None], c[None, :]])(padded, rows, cols)


def cr_augment(images: Array, key: Array) -> Array:
  """T(x) of bCR: a random horizontal flip (p = 1/2), then a random reflected translation.

  Pure, jittable and differentiable with respect to ``images``; the draws depend on ``key``
  and the images' shape only.
  """
  flip_key, shift_key = jax.random.split(key)
  flipped = flip(images, sample_flip(flip_key, images))
  shift = diffaugment.sample_translation(shift_key, images, TRANSLATION_RATIO)
  return reflect_translation(flipped, shift)
