"""DiffAugment: differentiable augmentation applied to real and generated images alike.

Zhao, Liu, Lin, Zhu and Han, "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020 (arXiv:2006.10738); reference implementation ``DiffAugment_pytorch.py`` of
mit-han-lab/data-efficient-gans. The discriminator only ever sees augmented images, real and
generated, and the generator's gradient flows back through the augmentation, so every op here is
a differentiable function of the images.

Images are NHWC arrays in [-1, 1], the range the reference works in: the brightness shift
U(-0.5, 0.5) is a quarter of that range, and translation and cutout fill with 0, the mid-grey of
[-1, 1]. No op clips, so colour ops may leave [-1, 1] exactly as in the reference.

Each op is split in two so that its random parameters can be given explicitly:

* ``sample_<op>(key, images) -> params``: one draw per image, depending on the images' shape
  and dtype only;
* ``<op>(images, params) -> images``: the deterministic, differentiable transform.

`OPS` maps op names to these pairs and `POLICIES` maps policy names to op sequences, in the
reference's order (``color`` = brightness, saturation, contrast). A policy string names policies
separated by commas (``"color,translation,cutout"``); they run in the order written, as in the
reference's ``for p in policy.split(',')``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from ganjax.errors import ConfigError

Array = jax.Array

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _per_image(values: Array) -> Array:
  """[N] -> [N, 1, 1, 1], to broadcast a per-image scalar over NHWC images."""
  return values[:, None, None, None]


def _uniform(key: Array, images: Array) -> Array:
  """U[0, 1), one value per image, in the images' dtype (``torch.rand(N, 1, 1, 1)``)."""
  return jax.random.uniform(key, (images.shape[0],), dtype=images.dtype)


# -- Colour ------------------------------------------------------------------------------------


def brightness(images: Array, shift: Array) -> Array:
  """``x + b_n``: adds ``shift[n]`` to every pixel and channel of image n (``rand_brightness``).

  Args:
    images: [N, H, W, C].
    shift: [N], the reference draws ``b ~ U(-0.5, 0.5)`` (`sample_brightness`).
  """
  return images + _per_image(shift.astype(images.dtype))


def sample_brightness(key: Array, images: Array) -> Array:
  """``b = U[0, 1) - 0.5`` per image."""
  return _uniform(key, images) - 0.5


def saturation(images: Array, factor: Array) -> Array:
  """``(x - m) * s_n + m`` with ``m`` the per-pixel mean over channels (``rand_saturation``).

  Called ``rand_color`` in the first version of the reference. ``s = 0`` gives grey, ``s = 1``
  the identity.

  Args:
    images: [N, H, W, C].
    factor: [N], the reference draws ``s ~ U(0, 2)`` (`sample_saturation`).
  """
  mean = jnp.mean(images, axis=-1, keepdims=True)
  return (images - mean) * _per_image(factor.astype(images.dtype)) + mean


def sample_saturation(key: Array, images: Array) -> Array:
  """``s = 2 * U[0, 1)`` per image."""
  return _uniform(key, images) * 2


def contrast(images: Array, factor: Array) -> Array:
  """``(x - m_n) * c_n + m_n`` with ``m_n`` the mean of image n over H, W and C (``rand_contrast``).

  Args:
    images: [N, H, W, C].
    factor: [N], the reference draws ``c ~ U(0.5, 1.5)`` (`sample_contrast`).
  """
  mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
  return (images - mean) * _per_image(factor.astype(images.dtype)) + mean


def sample_contrast(key: Array, images: Array) -> Array:
  """``c = U[0, 1) + 0.5`` per image."""
  return _uniform(key, images) + 0.5


# -- Translation -------------------------------------------------------------------------------


def translation(images: Array, shift: Array) -> Array:
  """Integer translation with zero fill (``rand_translation``), shape-preserving.

  ``out[n, i, j] = x[n, i + dy_n, j + dx_n]`` when that pixel exists, else 0; i.e. the content
  moves by ``(-dy, -dx)``. As in the reference, the images are zero-padded by one pixel and the
  shifted index grid is clamped into the padded image, so every pixel that falls outside reads
  the zero border. The gather is differentiable with respect to the gathered values.

  Args:
    images: [N, H, W, C].
    shift: int [N, 2], ``(dy, dx)`` per image (`sample_translation`).
  """
  _, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = jnp.clip(jnp.arange(h)[None] + shift[:, 0:1] + 1, 0, h + 1)   # [N, H]
  cols = jnp.clip(jnp.arange(w)[None] + shift[:, 1:2] + 1, 0, w + 1)   # [N, W]
  return jax.vmap(lambda x, r, c: x[r[:, None], c[None, :]])(padded, rows, cols)


def max_translation(size: int, ratio: float = TRANSLATION_RATIO) -> int:
  """Largest shift along an axis of ``size`` pixels: ``floor(size * ratio)`` (``size // 8``)."""
  return int(size * ratio)


def sample_translation(key: Array, images: Array, ratio: float = TRANSLATION_RATIO) -> Array:
  """``dy ~ U{-sy..sy}``, ``dx ~ U{-sx..sx}`` per image, ``s = floor(size * ratio)`` per axis."""
  n, h, w, _ = images.shape
  key_y, key_x = jax.random.split(key)
  sy, sx = max_translation(h, ratio), max_translation(w, ratio)
  dy = jax.random.randint(key_y, (n,), -sy, sy + 1)
  dx = jax.random.randint(key_x, (n,), -sx, sx + 1)
  return jnp.stack([dy, dx], axis=-1)


# -- Cutout ------------------------------------------------------------------------------------


def cutout_size(size: int, ratio: float = CUTOUT_RATIO) -> int:
  """Cutout side along an axis of ``size`` pixels: ``floor(size * ratio)`` (``size // 2``)."""
  return int(size * ratio)


def cutout(images: Array, offset: Array, ratio: float = CUTOUT_RATIO) -> Array:
  """Zeroes one ``kh x kw`` rectangle per image (``rand_cutout``), shape-preserving.

  With ``k = floor(size * ratio)`` per axis, pixel (i, j) of image n is zeroed (all channels)
  iff ``top <= i < top + kh`` and ``left <= j < left + kw``, where ``top = oy_n - kh // 2`` and
  ``left = ox_n - kw // 2``; the rectangle is cropped at the image border. The reference
  scatters zeros into a mask at the clamped indices, which zeroes exactly this cropped
  rectangle. The result is ``x * mask``, so the gradient is the mask.

  Args:
    images: [N, H, W, C].
    offset: int [N, 2], the rectangle's centre ``(oy, ox)`` per image (`sample_cutout`).
    ratio: size of the rectangle relative to the image.
  """
  _, h, w, _ = images.shape
  kh, kw = cutout_size(h, ratio), cutout_size(w, ratio)
  top = offset[:, 0:1] - kh // 2                                           # [N, 1]
  left = offset[:, 1:2] - kw // 2
  rows = jnp.arange(h)[None]
  cols = jnp.arange(w)[None]
  inside_rows = (rows >= top) & (rows < top + kh)                          # [N, H]
  inside_cols = (cols >= left) & (cols < left + kw)                        # [N, W]
  inside = inside_rows[:, :, None] & inside_cols[:, None, :]               # [N, H, W]
  mask = jnp.where(inside, 0, 1).astype(images.dtype)
  return images * mask[..., None]


def sample_cutout(key: Array, images: Array, ratio: float = CUTOUT_RATIO) -> Array:
  """``oy ~ U{0..H - kh % 2}``, ``ox ~ U{0..W - kw % 2}`` per image, as in the reference."""
  n, h, w, _ = images.shape
  key_y, key_x = jax.random.split(key)
  kh, kw = cutout_size(h, ratio), cutout_size(w, ratio)
  oy = jax.random.randint(key_y, (n,), 0, h + (1 - kh % 2))
  ox = jax.random.randint(key_x, (n,), 0, w + (1 - kw % 2))
  return jnp.stack([oy, ox], axis=-1)


# -- Registries and the policy -----------------------------------------------------------------


class Op(NamedTuple):
  """A random op: ``apply(images, sample(key, images))``."""

  sample: Callable[[Array, Array], Array]
  apply: Callable[[Array, Array], Array]


OPS: dict[str, Op] = {
    "brightness": Op(sample_brightness, brightness),
    "saturation": Op(sample_saturation, saturation),
    "contrast": Op(sample_contrast, contrast),
    "translation": Op(sample_translation, translation),
    "cutout": Op(sample_cutout, cutout),
}

POLICIES: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "translation": ("translation",),
    "cutout": ("cutout",),
}


def random_op(name: str, images: Array, key: Array) -> Array:
  """Op ``name`` of `OPS` with parameters drawn from ``key`` (the reference's ``rand_<name>``)."""
  op = OPS[name]
  return op.apply(images, op.sample(key, images))


def parse_policy(text: str) -> tuple[str, ...]:
  """The policy names of a comma-separated policy string, in order; ``""`` gives ``()``.

  Whitespace around names is ignored. An unknown or empty name raises `ConfigError`.
  """
  if not text.strip():
    return ()
  names = tuple(name.strip() for name in text.split(","))
  for name in names:
    if name not in POLICIES:
      raise ConfigError(f"unknown DiffAugment policy {name!r} in {text!r}; "
                        f"use comma-separated names from {sorted(POLICIES)}")
  return names


def policy_ops(policy: str) -> tuple[str, ...]:
  """The op names a policy string runs, in order (``"color,cutout"`` -> brightness, ..., cutout)."""
  return tuple(op for name in parse_policy(policy) for op in POLICIES[name])


def diff_augment(images: Array, key: Array, policy: str) -> Array:
  """DiffAugment of a batch: the ops of ``policy`` in order, each with its own subkey.

  ``DiffAugment(x, policy)`` of the reference, for NHWC images in [-1, 1]. Pure and jittable
  (``policy`` is static); differentiable with respect to ``images``. The empty policy returns
  ``images`` itself, so a training step without augmentation is unchanged bit for bit.

  Args:
    images: [N, H, W, C] in [-1, 1].
    key: PRNG key; ``jax.random.split(key, number of ops)`` gives one key per op.
    policy: comma-separated names of `POLICIES`, e.g. ``"color,translation,cutout"``.
  """
  ops = policy_ops(policy)
  if not ops:
    return images
  for name, op_key in zip(ops, jax.random.split(key, len(ops))):
    images = random_op(name, images, op_key)
  return images
