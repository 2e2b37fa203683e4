"""Checkpoints of the training state through orbax.

Checkpoints live in ``WORKDIR/checkpoints/<step>/`` (the `orbax.checkpoint.CheckpointManager`
default layout). Orbax writes each one to a temporary directory and renames it when complete,
so an interrupted save never leaves a checkpoint that looks valid.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from ganjax.errors import CheckpointError


def manager(directory: str, max_to_keep: int | None = 3,
            read_only: bool = False) -> ocp.CheckpointManager:
  """A manager for the checkpoints in `directory` (created unless read-only)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                         read_only=read_only)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(mngr: ocp.CheckpointManager, state: Any, step: int | None = None) -> None:
  """Saves `state` under its step (asynchronously; `mngr.wait_until_finished()` to wait)."""
  step = int(jax.device_get(state.step)) if step is None else step
  mngr.save(step, args=ocp.args.StandardSave(state), force=True)


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


def check_matches(mngr: ocp.CheckpointManager, target: Any, step: int) -> None:
  """Raises a CheckpointError when the stored arrays differ from `target`'s in name or shape.

  Reads only the checkpoint's metadata, so a mismatch is reported before any restore starts.
  """
  path = os.path.join(str(mngr.directory), str(step), "default")
  if not os.path.isdir(path):
    return  # not the layout `save` writes: the restore itself reports what is wrong
  stored = ocp.StandardCheckpointer().metadata(path).item_metadata
  problem = _mismatch(_shapes(stored), _shapes(target))
  if problem is not None:
    raise CheckpointError(
        f"checkpoint {mngr.directory}/{step} does not match the state the config builds "
        f"(a different model, optimizer or EMA setting?): {problem}")


def restore(mngr: ocp.CheckpointManager, target: Any, step: int | None = None) -> Any:
  """Restores the checkpoint at `step` (default: the latest) into the structure of `target`."""
  step = mngr.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(f"no checkpoint in {mngr.directory}")
  check_matches(mngr, target, step)
  try:
    return mngr.restore(step, args=ocp.args.StandardRestore(target))
  except (ValueError, KeyError, TypeError) as e:
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0]
    raise CheckpointError(
        f"checkpoint {mngr.directory}/{step} does not match the state the config builds "
        f"(a different model, optimizer or EMA setting?): {first_line}") from None


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
