"""Stopping a run cleanly: SIGTERM and SIGINT become a decision the loop reads between steps.

One process: the handler sets a flag; the loop checkpoints the step it just finished and stops
(a second SIGINT stops at once).

Several processes (``jax.distributed``): a preemption notice (SIGTERM) reaches the hosts at
different moments, and a process that stops on its own while the others enter the next step's
collectives hangs them all. So the decision is JAX's preemption sync manager's
(`jax.experimental.multihost_utils.reached_preemption_sync_point`): JAX's distributed runtime
owns SIGTERM, propagates a notice from any process to all, and every process reaches the same
sync step, saves that step's checkpoint and stops. SIGINT is turned into a SIGTERM of the same
process, so Ctrl-C on one host stops all of them the same way.

A stopped run exits with `EXIT_PREEMPTED` (75, ``EX_TEMPFAIL``: try again), which a scheduler
or a wrapper script can tell apart from a failure (1); its last line names the saved step.
"""

from __future__ import annotations

import os
import signal
from typing import Callable

from absl import logging
import jax
from jax.experimental import multihost_utils

from ganjax.errors import TrainingInterrupted

EXIT_PREEMPTED = 75


class Interrupted(Exception):
  """Raised by a long action (an evaluation) that sees the stop signal between its batches."""


def _synchronized() -> bool:
  """Whether the stop decision is taken by JAX's preemption sync manager (several processes)."""
  return jax.process_count() > 1


class StopSignal:
  """Inside ``with``: SIGTERM / SIGINT stop the loop after a step (`should_stop`)."""

  def __init__(self, synchronized: Callable[[], bool] = _synchronized):
    self.received: int | None = None
    self.sync = synchronized()
    self._previous = {}

  def __enter__(self) -> "StopSignal":
    signals = (signal.SIGINT,) if self.sync else (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: leave signals alone
        pass
    return self

  def _handle(self, signum, frame) -> None:
    del frame
    if self.received is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.received = signum
    if self.sync:  # JAX's preemption notifier owns SIGTERM: tell every process through it
      logging.warning("received signal %d: stopping all processes at a common step", signum)
      os.kill(os.getpid(), signal.SIGTERM)
    else:
      logging.warning("received signal %d: saving a checkpoint after this step", signum)

  @property
  def interrupted(self) -> bool:
    """Whether this process received a signal (for long actions that poll between batches)."""
    return self.received is not None

  def should_stop(self, step: int) -> bool:
    """Whether to checkpoint `step` and stop: this process's flag, or with several processes
    the common sync step of a preemption notice (called once at every step by every process)."""
    if self.sync:
      if multihost_utils.reached_preemption_sync_point(step):
        self.received = self.received or signal.SIGTERM
        return True
      return False
    return self.received is not None

  def interruption(self, step: int) -> TrainingInterrupted:
    """The exception the loop raises after saving the checkpoint of `step`."""
    return TrainingInterrupted(f"stopped by signal {self.received} at step {step}: checkpoint "
                               f"{step} saved; run the same command to resume", step=step)

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
