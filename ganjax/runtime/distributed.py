"""Multi-host start-up: `jax.distributed.initialize` from the config's ``distributed`` section.

With ``config.distributed.enabled`` every process of a run calls `initialize(config)` before
anything touches the JAX backend (data loading, `jax.devices()`); JAX's distributed runtime then
connects the processes through the coordinator, and `jax.devices()` lists the devices of all of
them. The trainer already splits every global batch by `jax.process_index()` and assembles
global arrays with `jax.make_array_from_process_local_data`, writes logs, images and reports
only on process 0, and saves orbax checkpoints from all processes into one directory. After
start-up, processes other than 0 log warnings and errors only, so the console shows each line
once. Evaluation (`ganjax.eval`) splits its batches the same way and gathers the outputs of all
processes with `ganjax.runtime.mesh.host_array`, so every process ends up with the same FID.

Section keys (``ganjax/configs/default.py``): ``coordinator_address`` ('host:port' of process 0),
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
import ml_collections

from ganjax.errors import ConfigError

CPU_COLLECTIVES = ("", "gloo", "mpi")


def initialize_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The arguments of `jax.distributed.initialize` the config asks for; None when disabled.

  Empty values are left out so that JAX detects them from the cluster environment.
  """
  section = config.distributed
  if not section.enabled:
    return None
  kwargs = {}
  if section.coordinator_address:
    kwargs["coordinator_address"] = section.coordinator_address
  if section.num_processes:
    kwargs["num_processes"] = int(section.num_processes)
  process_id = section.process_id
  if process_id >= 0:
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
  collectives = config.distributed.cpu_collectives
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
