"""Differentiable GAN augmentations as pure, jittable functions of (images, PRNG key).

* `diff_augment` -- DiffAugment (Zhao et al., NeurIPS 2020), policies ``color``,
  ``translation``, ``cutout`` and comma-separated combinations.
* `ada_augment` and `ada_update` -- adaptive discriminator augmentation (Karras et al., NeurIPS
  2020): the 'bgc' pipeline at strength p, and the heuristic that adjusts p.
* `make_augment` -- the one of them a training step applies before the discriminator.
* `cr_augment` -- the flip + translation T of balanced consistency regularization (Zhao et al.,
  AAAI 2021).

Images are NHWC in [-1, 1].
"""

from __future__ import annotations

from ganjax.diffaug.ada import PRESETS, TRANSFORMS, AdaParams, ada_augment, ada_update
from ganjax.diffaug.consistency import cr_augment
from ganjax.diffaug.diffaugment import OPS, POLICIES, diff_augment, parse_policy
from ganjax.diffaug.pipeline import Augment, make_augment

__all__ = [
    "OPS",
    "POLICIES",
    "PRESETS",
    "TRANSFORMS",
    "AdaParams",
    "Augment",
    "ada_augment",
    "ada_update",
    "cr_augment",
    "diff_augment",
    "make_augment",
    "parse_policy",
]
