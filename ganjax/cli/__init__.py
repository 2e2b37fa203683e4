"""What every ganjax command-line tool shares: process setup and one-line errors.

Import this module first in a tool's ``__main__`` module (before TensorFlow or JAX are
imported): it sets environment defaults for the tool's own process only, and glibc's allocator
to reuse the host memory each execution of a compiled program frees
(`ganjax.runtime.host_memory`, before any other thread starts).

The tools keep JAX's persistent compilation cache, so a restarted run (after a preemption, a
crash, or to continue it) reaches its first step without compiling again: in
``$GANJAX_COMPILATION_CACHE`` if set (``off`` turns it off), else in JAX's own
``$JAX_COMPILATION_CACHE_DIR`` if set, else in ``~/.cache/ganjax/jax_compilation``
(``$XDG_CACHE_HOME`` replaces ``~/.cache``).
"""

from __future__ import annotations

import errno
import logging as std_logging
import os
import signal
import sys
from typing import Callable, NoReturn

# TensorFlow only feeds data in ganjax: keep its C++ start-up chatter and oneDNN notice quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import logging

from ganjax.errors import GanjaxError, TrainingInterrupted  # pylint: disable=g-import-not-at-top
from ganjax.runtime import host_memory
from ganjax.runtime.signals import EXIT_PREEMPTED

HOST_MEMORY = host_memory.reuse_freed_memory()  # what it did, logged when a tool starts

# Libraries whose INFO records (per-save orbax chatter, backend probing) drown the training log;
# their warnings and errors still show.
_QUIET_LIBRARIES = ("/orbax/", "/jax/_src/", "/clu/")


def _orphaned_library_task(record: std_logging.LogRecord) -> bool:
  """asyncio's "Task exception was never retrieved" for a task of a quiet library: when a
  checkpoint write fails, orbax abandons its other serialization tasks, and each one's failure
  (the same write error) is logged, with its traceback, whenever the task is collected."""
  if record.name != "asyncio" or not str(record.msg).startswith("Task exception was never"):
    return False
  return any(lib in record.getMessage() for lib in _QUIET_LIBRARIES)


class _QuietLibraries(std_logging.Filter):
  """Drops the libraries' INFO records, and the tracebacks of their error records: an error
  they log in a background thread (orbax's writer on a full disk) reaches the user once, as
  ganjax's one-line error naming the cause."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if _orphaned_library_task(record):
      return False
    if not any(lib in record.pathname for lib in _QUIET_LIBRARIES):
      return True
    if record.exc_info or record.exc_text:
      record.exc_info, record.exc_text = None, None
    return record.levelno >= std_logging.WARNING


CACHE_ENV = "GANJAX_COMPILATION_CACHE"
CACHE_OFF = ("", "0", "off", "none")


def compilation_cache_dir() -> str | None:
  """Where the tools keep compiled programs (see the module docstring); None when off or when
  JAX's own ``JAX_COMPILATION_CACHE_DIR`` decides."""
  value = os.environ.get(CACHE_ENV)
  if value is not None:
    return None if value.strip().lower() in CACHE_OFF else os.path.expanduser(value)
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return None
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(cache, "ganjax", "jax_compilation")


def enable_compilation_cache() -> None:
  """Turns on JAX's persistent compilation cache in `compilation_cache_dir`."""
  path = compilation_cache_dir()
  if path is None:
    return
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_compilation_cache_dir", path)
  logging.info("compilation cache: %s", path)


def fail(message: str) -> NoReturn:
  """Reports a user error as one line on stderr and exits with status 1."""
  logging.flush()
  sys.stderr.write(f"ganjax: error: {message}\n")
  sys.exit(1)


def stopped(error: TrainingInterrupted) -> NoReturn:
  """Reports a run stopped by a signal as one line and exits with `EXIT_PREEMPTED`."""
  logging.flush()
  sys.stderr.write(f"ganjax: {error}\n")
  sys.exit(EXIT_PREEMPTED)


def _stop_before_training(signum, frame) -> None:
  """SIGTERM / SIGINT before the training loop installs its own handler (data loading,
  compilation, sampling tools): a one-line stop, nothing half-written."""
  del frame
  raise TrainingInterrupted(f"stopped by signal {signum} before a step was trained; the run "
                            "directory is as it was")


# Errors of the file system that a user fixes (space, quota, permissions), not bugs.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                 errno.EPERM, errno.EIO)


class _DropLateCallbackErrors:
  """sys.stderr without the tracebacks of ``RuntimeError: Event loop is closed``.

  When a checkpoint write fails (a full disk), orbax closes the asyncio loop of that save while
  tensorstore still has write callbacks in flight; each then prints such a traceback, which
  says nothing the one-line error does not. Everything else passes unchanged.
  """

  LATE_ERROR = "RuntimeError: Event loop is closed"

  def __init__(self, stream):
    self.stream, self.pending, self.block = stream, "", None

  def write(self, text: str) -> int:
    self.pending += text
    while "\n" in self.pending:
      line, self.pending = self.pending.split("\n", 1)
      self._line(line + "\n")
    return len(text)

  def _line(self, line: str) -> None:
    if self.block is None:
      if line.startswith("Traceback (most recent call last):"):
        self.block = [line]
      else:
        self.stream.write(line)
      return
    self.block.append(line)
    if not line.startswith(" "):  # the last line of the traceback
      if line.strip() != self.LATE_ERROR:
        self.stream.write("".join(self.block))
      self.block = None

  def flush(self) -> None:
    if self.block is None and self.pending:  # a partial line (a progress bar, a prompt)
      self.stream.write(self.pending)
      self.pending = ""
    self.stream.flush()

  def __getattr__(self, name: str):
    return getattr(self.stream, name)


def run(main: Callable[[list[str]], None], flags_parser=None) -> None:
  """`absl.app.run` with quiet library logs, `GanjaxError`s and file-system write errors
  reported as one line (status 1), and a run stopped by a signal reported as one line with
  status `EXIT_PREEMPTED` (75)."""

  def wrapped(argv: list[str]) -> None:
    logging.get_absl_handler().addFilter(_QuietLibraries())
    sys.stderr = _DropLateCallbackErrors(sys.stderr)
    for sig in (signal.SIGTERM, signal.SIGINT):
      signal.signal(sig, _stop_before_training)
    logging.info(HOST_MEMORY)
    try:
      enable_compilation_cache()
      main(argv)
    except TrainingInterrupted as e:
      stopped(e)
    except GanjaxError as e:
      fail(str(e))
    except OSError as e:
      if e.errno not in _WRITE_ERRNOS:
        raise
      fail(f"cannot write {e.filename or 'a file'}: {e.strerror}")

  if flags_parser is None:
    app.run(wrapped)
  else:
    app.run(wrapped, flags_parser=flags_parser)
