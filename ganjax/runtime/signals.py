"""SIGTERM and SIGINT as a flag the training loop reads between steps."""

from __future__ import annotations

import signal

from absl import logging

from ganjax.errors import TrainingInterrupted


class StopSignal:
  """Turns SIGTERM / SIGINT into a flag the loop checks between steps (a second SIGINT kills)."""

  def __init__(self):
    self.received: int | None = None
    self._previous = {}

  def __enter__(self) -> "StopSignal":
    for sig in (signal.SIGTERM, signal.SIGINT):
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
    logging.warning("received signal %d: saving a checkpoint after this step", signum)

  def interruption(self, step: int) -> TrainingInterrupted:
    """The error the loop raises after saving the checkpoint of `step` on a received signal."""
    return TrainingInterrupted(f"stopped by signal {self.received} at step {step}; checkpoint "
                               "saved, run the same command to resume")

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
