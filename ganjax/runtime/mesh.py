"""The device mesh and the shardings of a data-parallel run.

One 1-D mesh over the devices of every process, axis ``'data'``: the state is replicated, the
batch split over ``'data'``. Every process holds its own slice of each global batch and the
arrays are assembled with `jax.make_array_from_process_local_data`, so the same code runs on one
device, on several, and on several hosts.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P, Sharding
import numpy as np

from ganjax.errors import ConfigError

DATA_AXIS = "data"


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over `devices` (default: all devices of every process), axis ``'data'``."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """The same value on every device (the training state)."""
  return NamedSharding(mesh, P())


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading axis split over ``'data'`` (a batch of images, of latents, of labels)."""
  return NamedSharding(mesh, P(DATA_AXIS))


def batch_sharding(mesh: Mesh, batch_axis: int = 1) -> NamedSharding:
  """Axis `batch_axis` split over ``'data'``: a training batch ``[n_critic, B, ...]`` (1), or a
  population's per-member batches ``[K, n_critic, B, ...]`` (2)."""
  return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def round_to_devices(batch_size: int, mesh: Mesh) -> int:
  """The smallest multiple of the mesh's device count that is at least `batch_size`."""
  n = mesh.devices.size
  return max(n, -(-batch_size // n) * n)


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """A one-line error unless the global batch splits evenly over the devices and processes."""
  n = mesh.devices.size
  if batch_size <= 0 or batch_size % n:
    raise ConfigError(f"batch_size={batch_size} is not divisible by the {n} devices; use a "
                      f"multiple of {n}")
  if batch_size % jax.process_count():
    raise ConfigError(f"batch_size={batch_size} is not divisible by the {jax.process_count()} "
                      "processes")


def to_global_batch(local: Any, sharding: NamedSharding, batch_size: int,
                    batch_axis: int = 1) -> Any:
  """Assembles every process's slice of a batch (split on `batch_axis`) into global arrays."""

  def make(x):
    shape = x.shape[:batch_axis] + (batch_size,) + x.shape[batch_axis + 1:]
    return jax.make_array_from_process_local_data(sharding, x, shape)

  return jax.tree.map(make, local)


def process_slice(x: np.ndarray) -> np.ndarray:
  """This process's rows of a global batch every process holds in full."""
  local = len(x) // jax.process_count()
  start = jax.process_index() * local
  return x[start:start + local]


def global_array(value: np.ndarray, sharding: Sharding) -> jax.Array:
  """A global array with `value`, which every process holds in full, laid out by `sharding`.

  Each process places only the shards of its own devices (`jax.make_array_from_callback`), so
  this works on one process and on many alike.
  """
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def host_array(x: jax.Array) -> np.ndarray:
  """The whole value of `x` on this host, gathered from all processes when it spans several."""
  if x.is_fully_addressable or x.sharding.is_fully_replicated:
    return np.asarray(jax.device_get(x))
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))
