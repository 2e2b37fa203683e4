"""The augmentation a training step applies to every image right before the discriminator.

`make_augment` turns the step's static choice into one function ``augment(images, key, p)``:
DiffAugment with a fixed policy (`ganjax.diffaug.diffaugment`, ``p`` unused) or ADA's pipeline
at the probability ``p`` the training state carries (`ganjax.diffaug.ada`). Both are
differentiable with respect to the images, so the generator's gradient flows through them; real
and generated images get independent draws (one key each), as in both references
(``DiffAugment(x, policy)`` and ``AugmentPipe`` are called once per batch).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax

from ganjax.diffaug import ada, diffaugment
from ganjax.errors import ConfigError

Array = jax.Array
Augment = Callable[[Array, Array, "Array | None"], Array]


def _diff_augment(images: Array, key: Array, p: Array | None, *, policy: str) -> Array:
  del p
  return diffaugment.diff_augment(images, key, policy)


def _ada_augment(images: Array, key: Array, p: Array | None, *, preset: str) -> Array:
  return ada.ada_augment(images, key, p, preset=preset)


def make_augment(policy: str = "", use_ada: bool = False, ada_preset: str = "bgc"
                 ) -> Augment | None:
  """``augment(images, key, p) -> images`` for the discriminator's inputs, or None when off.

  Args:
    policy: a DiffAugment policy string (``"color,translation,cutout"``; ``""`` = none).
    use_ada: ADA's pipeline `ada_preset` at the step's probability p instead.
    ada_preset: a preset of `ganjax.diffaug.ada.PRESETS`.

  Raises:
    ConfigError: for an unknown policy or preset, or DiffAugment and ADA together (the
      references use one or the other: StudioGAN's ADA replaces its DiffAugment).
  """
  diffaugment.parse_policy(policy)
  if use_ada:
    ada.preset_transforms(ada_preset)
    if policy.strip():
      raise ConfigError(f"DiffAugment (policy {policy!r}) and ADA cannot be used together; "
                        "set one of them off")
    return functools.partial(_ada_augment, preset=ada_preset)
  if policy.strip():
    return functools.partial(_diff_augment, policy=policy)
  return None
