"""Drawing many samples from a trained generator, in fixed-size jitted batches.

Latents of batch b are drawn from ``fold_in(PRNGKey(seed), b)``, so the same (seed, count,
batch size) always gives the same images. Conditional generators get labels: either a fixed
class per requested block (``per_class``) or labels cycling through the classes.
"""

from __future__ import annotations

from typing import Any, Iterator

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np

from ganjax.data import to_uint8
from ganjax.gan.build import GAN
from ganjax.runtime import mesh as mesh_lib

PyTree = Any


class Sampler:
  """Samples uint8 images from a generator's variables, batch by batch, over a device mesh."""

  def __init__(self, gan: GAN, mesh: Mesh, batch_size: int = 256):
    self.batch_size = mesh_lib.round_to_devices(batch_size, mesh)
    self.generator = gan.generator
    self.num_classes = gan.generator.num_classes
    self.replicated, self.split = mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)
    sample = gan.sample_fn()
    shape = (self.batch_size, self.generator.z_dim)

    def sample_batch(variables: PyTree, key: jax.Array, labels: jax.Array | None) -> jax.Array:
      z = jax.lax.with_sharding_constraint(jax.random.normal(key, shape, jnp.float32),
                                           self.split)
      return sample(variables, z, labels)

    self._sample = jax.jit(sample_batch,
                           in_shardings=(self.replicated, self.replicated, self.split),
                           out_shardings=self.split)

  def _key(self, seed: int, index: int) -> jax.Array:
    key = np.asarray(jax.random.fold_in(jax.random.PRNGKey(seed), index))
    return mesh_lib.global_array(key, self.replicated)

  def batches(self, variables: PyTree, num: int, *, seed: int = 0, label: int | None = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """`num` images as (uint8 [n, H, W, C], int32 labels [n] or None) batches.

    Conditional generators use `label` for every image, or labels cycling 0, 1, ..., K-1 when
    `label` is None (so any prefix of the samples is nearly class-balanced).
    """
    done, index = 0, 0
    while done < num:
      labels = None
      if self.num_classes:
        positions = np.arange(done, done + self.batch_size)
        labels = np.full(self.batch_size, label, np.int32) if label is not None else (
            positions % self.num_classes).astype(np.int32)
      images = self._sample(variables, self._key(seed, index),
                            None if labels is None else mesh_lib.global_array(labels,
                                                                                 self.split))
      take = min(self.batch_size, num - done)
      yield (to_uint8(mesh_lib.host_array(images)[:take]),
             None if labels is None else labels[:take])
      done += take
      index += 1
