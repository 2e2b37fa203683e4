"""A run directory: where one task writes its checkpoints, metrics and ``run_info.json``
(`ganjax.runtime.run_info`)."""

from __future__ import annotations

import os
from typing import Any, Callable

from absl import logging
import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh
import ml_collections

from ganjax.data.spec import DataSpec
from ganjax.errors import CheckpointError, NonFiniteLossError
from ganjax.ops import conv
from ganjax.runtime import checkpoints, files, mesh as mesh_lib, metrics
from ganjax.runtime.run_info import write_run_info

DAMAGED_DIR = "damaged_checkpoints"  # checkpoints that could not be read, set aside
PENDING_FILE = "pending_actions.json"  # actions a stop interrupted, for the resumed run


def last_checkpoint_text(step: int | None) -> str:
  """What a failing run still has on disk: the end of its non-finite-loss message."""
  if step is None:
    return "no checkpoint was written"
  return f"the last checkpoint (step {step}) is intact"


@jax.jit
def all_finite(tree: Any) -> jax.Array:
  """Whether every float leaf of `tree` is finite."""
  leaves = [jax.numpy.all(jax.numpy.isfinite(x)) for x in jax.tree.leaves(tree)
            if jax.numpy.issubdtype(x.dtype, jax.numpy.inexact)]
  return jax.numpy.all(jax.numpy.stack(leaves)) if leaves else jax.numpy.array(True)


class Run:
  """The run directory of one task: mesh, writer, checkpoints, run_info.

  Attributes:
    workdir: the directory.
    mesh: all devices of every process (`ganjax.runtime.mesh.make_mesh`).
    conv_backend: the models' convolution backend on this mesh (`ganjax.ops.conv.backend_for`).
    is_chief: process 0, the one that writes logs, images and JSON files.
    writer: the clu metric writer (on the chief: TensorBoard events, and for a population of
      `members` ``member_<i>/<name>`` metrics in ``WORKDIR/member_<i>/``; and
      ``WORKDIR/metrics.jsonl``).
    metrics_file: the `metrics.JsonlWriter` of ``metrics.jsonl`` (None off the chief).
    ckpt: the orbax checkpoint manager of ``WORKDIR/checkpoints``.
  """

  def __init__(self, workdir: str, keep_checkpoints: int, mesh: Mesh | None = None,
               members: int = 0):
    self.workdir = workdir
    self.mesh = mesh_lib.make_mesh() if mesh is None else mesh
    self.conv_backend = conv.backend_for(self.mesh)
    logging.info("convolutions: %s", conv.describe_backend(self.conv_backend, self.mesh))
    self.is_chief = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    self.writer, self.metrics_file = metrics.make_writer(workdir, self.is_chief, members)
    self.ckpt = checkpoints.manager(os.path.join(workdir, "checkpoints"), keep_checkpoints)
    self.last_saved_step: int | None = None
    self._saving: int | None = None  # the step orbax may still be writing
    self.stop = None  # the loop's `StopSignal` while it runs

  def interrupted(self) -> bool:
    """Whether a stop signal arrived (long actions poll it between batches)."""
    return self.stop is not None and self.stop.interrupted

  @property
  def replicated(self) -> jax.sharding.NamedSharding:
    return mesh_lib.replicated(self.mesh)

  def write_run_info(self, config: ml_collections.ConfigDict, spec: DataSpec,
                     source: str) -> None:
    if self.is_chief:
      write_run_info(self.workdir, config, spec, source)

  def path(self, *parts: str) -> str:
    return os.path.join(self.workdir, *parts)

  def restore_or_init(self, init: Callable[[jax.Array], Any], rng: jax.Array) -> Any:
    """The newest readable checkpoint's state, or ``init(rng)`` (replicated over the mesh).

    Checkpoints newer than it that cannot be read are moved to ``WORKDIR/damaged_checkpoints/``
    (kept for inspection, never picked again) with a warning naming each and the cause.
    """
    if not self.ckpt.all_steps():
      self._truncate_metrics(0)
      logging.info("initializing a new run in %s", self.workdir)
      return jax.jit(init, out_shardings=self.replicated)(rng)
    target = checkpoints.abstract_state(init, rng, self.replicated)
    state, step, damaged = checkpoints.restore_newest(self.ckpt, target)
    for bad, cause in damaged:
      logging.warning("checkpoint %s/checkpoints/%d cannot be read (%s): resuming from step %d; "
                      "it is kept in %s", self.workdir, bad, cause, step,
                      self.path(DAMAGED_DIR, str(bad)))
    if damaged:
      self._set_aside([bad for bad, _ in damaged])
    logging.info("resuming from %s/checkpoints/%d", self.workdir, step)
    self._truncate_metrics(step)
    self.last_saved_step = step
    return state

  def _truncate_metrics(self, step: int) -> None:
    if self.metrics_file is not None:  # lines of steps the resumed run trains again
      self.metrics_file.truncate_after(step)

  def _set_aside(self, steps: list[int]) -> None:
    if self.is_chief:
      for step in steps:
        destination = self.path(DAMAGED_DIR, str(step))
        suffix = 0
        while os.path.exists(destination + (f".{suffix}" if suffix else "")):
          suffix += 1
        os.makedirs(self.path(DAMAGED_DIR), exist_ok=True)
        os.replace(self.path("checkpoints", str(step)),
                   destination + (f".{suffix}" if suffix else ""))
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("ganjax damaged checkpoints set aside")
    self.ckpt.reload()

  def checkpoint_text(self) -> str:
    return last_checkpoint_text(self.last_saved_step)

  def _save_error(self, step: int | None, error: BaseException) -> CheckpointError:
    intact = sorted(checkpoints.complete_steps(self.path("checkpoints")))
    what = f"checkpoint {step}" if step is not None else "a checkpoint"
    kept = (f"checkpoint {intact[-1]} is intact and a restart resumes from it" if intact else
            "no checkpoint is complete")
    return CheckpointError(f"cannot save {what} in {self.path('checkpoints')}: "
                           f"{checkpoints.first_line(error)}; {kept}")

  def save(self, step: int, state: Any) -> None:
    """Checkpoints `state` as `step` (once per step; never from non-finite parameters).

    The save runs in orbax's background thread; an error there (no space, a quota, an I/O
    error) surfaces here at the next save, or in `flush`, as a one-line `CheckpointError`.
    """
    if step == self.last_saved_step:
      return
    if not bool(all_finite(state)):
      raise NonFiniteLossError(f"parameters became non-finite by step {step}; not saving them. "
                               f"{self.checkpoint_text()}")
    try:
      self.ckpt.check_for_errors()  # the previous save, written in the background
    except checkpoints.READ_ERRORS as e:
      raise self._save_error(self._saving, e) from None
    try:
      checkpoints.save(self.ckpt, state, step)
    except checkpoints.READ_ERRORS as e:  # this save, or the one before it, still unfinished
      unfinished = self._saving not in checkpoints.complete_steps(self.path("checkpoints"))
      raise self._save_error(self._saving if unfinished else step, e) from None
    self._saving = step
    self.last_saved_step = step

  def flush(self) -> None:
    """Waits for the checkpoint being written (one-line error if it failed) and the writers."""
    try:
      self.ckpt.wait_until_finished()
    except checkpoints.READ_ERRORS as e:
      raise self._save_error(self._saving, e) from None
    self._saving = None
    self.writer.flush()

  def write_pending(self, step: int, actions: list[str]) -> None:
    """Records actions of `step` that a stop interrupted (run first by the resumed run)."""
    if self.is_chief:
      files.write_json(self.path(PENDING_FILE), {"step": step, "actions": actions})

  def pending(self, step: int) -> list[str]:
    """The interrupted actions of `step` (the restored step), and forgets them."""
    path = self.path(PENDING_FILE)
    if not os.path.exists(path):
      return []
    record = files.read_json(path)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("ganjax pending actions read")
    if self.is_chief:
      os.remove(path)
    return list(record["actions"]) if record.get("step") == step else []

  def close(self) -> None:
    self.ckpt.close()
    self.writer.close()
