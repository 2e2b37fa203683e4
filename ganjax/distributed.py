"""Multi-host start-up: `jax.distributed.initialize` from the config's ``distributed`` section.

With ``config.distributed.enabled`` every process of a run calls `initialize(config)` before
anything touches the JAX backend (data loading, `jax.devices()`); JAX's distributed runtime then
connects the processes through the coordinator, and `jax.devices()` lists the devices of all of
them. The trainer already splits every global batch by `jax.process_index()` and assembles
global arrays with `jax.make_array_from_process_local_data`, writes logs, images and reports
only on process 0, and saves orbax checkpoints from all processes into one directory. After
start-up, processes other than 0 log warnings and errors only, so the console shows each line
once. Evaluation (`ganjax.eval`) splits its batches the same way and gathers the outputs of all
processes with `host_array`, so every process ends up with the same FID.

Section keys (``ganjax/default_config.py``): ``coordinator_address`` ('host:port' of process 0),
``num_processes`` and ``process_id``; left empty (``''``, 0, -1) JAX's own cluster detection
fills them in (SLURM, Open MPI, TPU pods, ...). ``cpu_collectives`` chooses the implementation
of cross-process collectives on the CPU backend ('gloo', 'mpi'; '' = JAX's default, which has
no cross-process CPU collectives); it has no effect on GPU or TPU devices.

See https://jax.readthedocs.io/en/latest/multi_process.html.
"""

from __future__ import annotations

from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
from jax.sharding import Sharding
import ml_collections
import numpy as np

from ganjax.errors import ConfigError

CPU_COLLECTIVES = ("", "gloo", "mpi")


def _section(config: ml_collections.ConfigDict) -> dict[str, Any]:
  # .get: configs written before the section existed have no distributed training.
  section = config.get("distributed")
  return {} if section is None else dict(section)


def initialize_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The arguments of `jax.distributed.initialize` the config asks for; None when disabled.

  Empty values are left out so that JAX detects them from the cluster environment.
  """
  section = _section(config)
  if not section.get("enabled", False):
    return None
  kwargs = {}
  if section.get("coordinator_address"):
    kwargs["coordinator_address"] = section["coordinator_address"]
  if section.get("num_processes"):
    kwargs["num_processes"] = int(section["num_processes"])
  process_id = section.get("process_id")
  if process_id is not None and process_id >= 0:
    kwargs["process_id"] = int(process_id)
    if "num_processes" in kwargs and process_id >= kwargs["num_processes"]:
      raise ConfigError(f"distributed.process_id={process_id} but num_processes="
                        f"{kwargs['num_processes']}; ids run from 0 to num_processes - 1")
  return kwargs


def initialize(config: ml_collections.ConfigDict) -> bool:
  """Starts JAX's distributed runtime when ``config.distributed.enabled``; returns whether it did.

  Must run before anything initializes the JAX backend.
  """
  kwargs = initialize_kwargs(config)
  if kwargs is None:
    return False
  collectives = _section(config).get("cpu_collectives", "gloo")
  if collectives not in CPU_COLLECTIVES:
    raise ConfigError(f"unknown distributed.cpu_collectives {collectives!r}; choose one of "
                      f"{list(CPU_COLLECTIVES)}")
  if collectives:
    jax.config.update("jax_cpu_collectives_implementation", collectives)
  jax.distributed.initialize(**kwargs)
  logging.info("distributed: process %d of %d, %d local and %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)  # progress lines from process 0 only
  return True


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
