"""Drawing many samples from a trained generator, in fixed-size jitted batches.

Latents of batch b are drawn from ``fold_in(PRNGKey(seed), b)``, so the same (seed, count,
batch size) always gives the same images. Conditional generators get labels: either a fixed
class per requested block (``per_class``) or labels cycling through the classes.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from ganjax import checkpoints, distributed, population
from ganjax.data import to_uint8
from ganjax.errors import CheckpointError, ConfigError
from ganjax.experiment import GAN, build_gan, read_run_info
from ganjax.state import GANState

PyTree = Any


class Sampler:
  """Samples uint8 images from a generator's variables, batch by batch, over a device mesh."""

  def __init__(self, gan: GAN, mesh: Mesh, batch_size: int = 256):
    n = mesh.devices.size
    self.batch_size = max(n, -(-batch_size // n) * n)  # a multiple of the device count
    self.generator = gan.generator
    self.num_classes = gan.generator.num_classes
    self.replicated, self.split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
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
    return distributed.global_array(key, self.replicated)

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
                            None if labels is None else distributed.global_array(labels,
                                                                                 self.split))
      take = min(self.batch_size, num - done)
      yield (to_uint8(distributed.host_array(images)[:take]),
             None if labels is None else labels[:take])
      done += take
      index += 1


def load_run(workdir: str, step: int | None = None,
             member: int | None = None) -> tuple[Any, GAN, GANState]:
  """The config, models and restored state of the run in `workdir` (latest checkpoint by default).

  Needs no data: the data spec comes from the run's ``run_info.json``. For a population run
  (`ganjax.population`), `member` i selects member i: its config (seed and swept values) and its
  slice of the stacked state.
  """
  config, spec = read_run_info(workdir)
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  pop_config = population.population_of(config)
  if pop_config is None and member is not None:
    raise ConfigError(f"{workdir!r} is a single run, not a population: it has no member {member}")
  if pop_config is not None and member is None:
    raise ConfigError(f"{workdir!r} is a population of {pop_config.size} members; choose one "
                      "with --member")
  if pop_config is None:
    gan = build_gan(config, spec)
    init, rng = gan.init, jax.random.PRNGKey(config.seed)
  else:
    member_config = population.member_config(config, member)  # checks the member's range
    pop = population.build_population(config, spec)
    gan, init, rng = pop.gan, pop.init, pop.rngs()
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise CheckpointError(f"{workdir!r} has no checkpoints directory")
  mngr = checkpoints.manager(directory, read_only=True)
  try:
    target = checkpoints.abstract_state(init, rng, NamedSharding(mesh, P()))
    if step is not None and step not in mngr.all_steps():
      raise CheckpointError(f"no checkpoint for step {step} in {directory} (there are "
                            f"{sorted(mngr.all_steps())})")
    state = checkpoints.restore(mngr, target, step)
  finally:
    mngr.close()
  if pop_config is not None:
    return member_config, gan, population.member_state(state, member)
  return config, gan, state
