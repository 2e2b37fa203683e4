"""Checkpoints of the training state through orbax.

Checkpoints live in ``WORKDIR/checkpoints/<step>/`` (the `orbax.checkpoint.CheckpointManager`
default layout). Orbax writes each one to a temporary directory and renames it when complete,
so an interrupted save never leaves a checkpoint that looks valid; a failed save (a full disk,
a quota, permissions) leaves the previous checkpoints as they were.

Restoring tells two problems apart (`restore_newest`): a checkpoint whose files cannot be read
(truncated, deleted, corrupted: it is *damaged*), and a config that builds a different state
than the one saved (every checkpoint then disagrees with it the same way). A damaged newest
checkpoint is skipped for the newest one that reads.
"""

from __future__ import annotations

import os
import re
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp

from ganjax.errors import CheckpointError


def manager(directory: str, max_to_keep: int | None = 3,
            read_only: bool = False) -> ocp.CheckpointManager:
  """A manager for the checkpoints in `directory` (created unless read-only)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                         read_only=read_only,
                                         cleanup_tmp_directories=not read_only)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(mngr: ocp.CheckpointManager, state: Any, step: int | None = None) -> None:
  """Saves `state` under its step (asynchronously; `mngr.wait_until_finished()` to wait)."""
  step = int(jax.device_get(state.step)) if step is None else step
  mngr.save(step, args=ocp.args.StandardSave(state), force=True)


def complete_steps(directory: str) -> list[int]:
  """The steps of the complete checkpoints in `directory` (orbax renames a checkpoint's
  temporary directory to its step only when every file is written)."""
  if not os.path.isdir(directory):
    return []
  return [int(n) for n in os.listdir(directory)
          if n.isdigit() and os.path.isdir(os.path.join(directory, n))]


def abstract_state(init_fn, rng: jax.Array, sharding: jax.sharding.Sharding) -> Any:
  """Shapes, dtypes and shardings of the state `init_fn(rng)` makes, without computing it."""
  shapes = jax.eval_shape(init_fn, rng)
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def _leaf_name(path: tuple[Any, ...]) -> str:
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def _shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  return {_leaf_name(path): (tuple(leaf.shape), str(leaf.dtype))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _mismatch(stored: dict[str, Any], wanted: dict[str, Any]) -> str | None:
  """The first difference between stored and wanted (name -> (shape, dtype)) leaves, or None."""
  for name in sorted(set(stored) | set(wanted)):
    if name not in stored:
      return f"{name} is not in the checkpoint"
    if name not in wanted:
      return f"the checkpoint has {name}, which the config does not build"
    if stored[name] != wanted[name]:
      (s_shape, s_dtype), (w_shape, w_dtype) = stored[name], wanted[name]
      return (f"{name} is {s_dtype}{list(s_shape)} in the checkpoint, {w_dtype}{list(w_shape)} "
              "in the config")
  return None


class Mismatch(CheckpointError):
  """The checkpoint reads, but holds another state than the config builds."""


# What reading a damaged checkpoint raises (orbax, tensorstore, json, the file system).
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, IndexError,
               AttributeError)


# tensorstore's I/O errors carry the operating system's error number: "[os_error_code='27']".
_OS_ERROR = re.compile(r"os_error_code='(\d+)'")


def first_line(error: BaseException) -> str:
  """The cause an error gives, in one line: the operating system's reason when the message
  carries one (tensorstore's long I/O errors), else the first line of the message (and the
  error's type when the message is empty), at most 300 characters."""
  lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
  text = lines[0] if lines else type(error).__name__
  code = _OS_ERROR.search(text)
  if code:
    return f"{os.strerror(int(code.group(1)))} [errno {code.group(1)}]"
  return text if len(text) <= 300 else text[:297] + "..."


def check_matches(mngr: ocp.CheckpointManager, target: Any, step: int) -> None:
  """Raises `Mismatch` when the stored arrays differ from `target`'s in name or shape.

  Reads only the checkpoint's metadata, so a mismatch is reported before any restore starts.
  """
  path = os.path.join(str(mngr.directory), str(step), "default")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path} is missing")
  stored = _shapes(ocp.StandardCheckpointer().metadata(path).item_metadata)
  if not stored:  # orbax reads a truncated _METADATA as an empty tree
    raise ValueError("its metadata lists no arrays (truncated or unreadable)")
  problem = _mismatch(stored, _shapes(target))
  if problem is not None:
    raise Mismatch(
        f"checkpoint {mngr.directory}/{step} does not match the state the config builds "
        f"(a different model, optimizer or EMA setting?): {problem}")


def restore_step(mngr: ocp.CheckpointManager, target: Any, step: int) -> Any:
  """The checkpoint of `step` in the structure of `target`; `Mismatch` if it holds another
  state, any of `READ_ERRORS` if its files cannot be read."""
  check_matches(mngr, target, step)  # the metadata agree: a failure below is damage
  return mngr.restore(step, args=ocp.args.StandardRestore(target))


def restore_newest(mngr: ocp.CheckpointManager, target: Any
                   ) -> tuple[Any, int, list[tuple[int, str]]]:
  """The newest checkpoint that reads: ``(state, step, damaged)``, `damaged` listing the newer
  steps that could not be read and why.

  Raises a one-line `CheckpointError` when none reads: the `Mismatch` of the newest when every
  checkpoint reads but holds another state (the config changed), else the list of causes.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  if not steps:
    raise CheckpointError(f"no checkpoint in {mngr.directory}")
  damaged, mismatches = [], []
  for step in steps:
    try:
      return restore_step(mngr, target, step), step, damaged
    except Mismatch as e:
      mismatches.append(e)
      damaged.append((step, str(e).rsplit(": ", 1)[-1]))
    except READ_ERRORS as e:
      damaged.append((step, first_line(e)))
  if len(mismatches) == len(steps):
    raise mismatches[0]
  causes = "; ".join(f"step {step}: {cause}" for step, cause in damaged)
  raise CheckpointError(f"no readable checkpoint in {mngr.directory} ({causes})")


def restore(mngr: ocp.CheckpointManager, target: Any, step: int | None = None) -> Any:
  """Restores the checkpoint at `step` (default: the newest that reads, with a warning for each
  damaged newer one) into the structure of `target`; one-line `CheckpointError`s."""
  if step is None:
    state, step, damaged = restore_newest(mngr, target)
    for bad, cause in damaged:
      logging.warning("checkpoint %s/%d cannot be read (%s); using step %d", mngr.directory,
                      bad, cause, step)
    return state
  try:
    return restore_step(mngr, target, step)
  except READ_ERRORS as e:
    if isinstance(e, CheckpointError):
      raise
    raise CheckpointError(f"checkpoint {mngr.directory}/{step} cannot be read: "
                          f"{first_line(e)}") from None


def restore_latest(directory: str, init_fn, rng: jax.Array, sharding: jax.sharding.Sharding,
                   step: int | None = None) -> Any:
  """The state of the checkpoint at `step` (default: the latest) in `directory`, read-only,
  in the structure ``init_fn(rng)`` builds (each array laid out by `sharding`)."""
  if not os.path.isdir(directory):
    raise CheckpointError(f"{os.path.dirname(directory)!r} has no checkpoints directory")
  mngr = manager(directory, read_only=True)
  try:
    if step is not None and step not in mngr.all_steps():
      raise CheckpointError(f"no checkpoint for step {step} in {directory} (there are "
                            f"{sorted(mngr.all_steps())})")
    return restore(mngr, abstract_state(init_fn, rng, sharding), step)
  finally:
    mngr.close()
