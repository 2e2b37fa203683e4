"""Errors that describe a problem with the user's input or run.

The command-line tools report these as one line (``ganjax: error: ...``) and exit non-zero;
any other exception is a bug and keeps its traceback.
"""


class GanjaxError(Exception):
  """Base class of the errors reported to the user as one line."""


class ConfigError(GanjaxError, ValueError):
  """A config value that cannot work (unknown name, bad option, indivisible batch size)."""


class DataError(GanjaxError, ValueError):
  """A data set that cannot be used as asked (missing, empty, unreadable)."""


class CheckpointError(GanjaxError, ValueError):
  """A checkpoint that is missing or does not match the state the config builds."""


class NonFiniteLossError(GanjaxError, FloatingPointError):
  """A loss or parameter became NaN or infinite."""


class TrainingInterrupted(GanjaxError):
  """Training stopped on a signal (after saving the checkpoint of `step`, when not None)."""

  def __init__(self, message: str, step: int | None = None):
    super().__init__(message)
    self.step = step
