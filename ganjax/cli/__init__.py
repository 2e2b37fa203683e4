"""What every ganjax command-line tool shares: process setup and one-line errors.

Import this module first in a tool's ``__main__`` module (before TensorFlow or JAX are
imported): it sets environment defaults for the tool's own process only.

The tools keep JAX's persistent compilation cache, so a restarted run (after a preemption, a
crash, or to continue it) reaches its first step without compiling again: in
``$GANJAX_COMPILATION_CACHE`` if set (``off`` turns it off), else in JAX's own
``$JAX_COMPILATION_CACHE_DIR`` if set, else in ``~/.cache/ganjax/jax_compilation``
(``$XDG_CACHE_HOME`` replaces ``~/.cache``).
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
from typing import Callable, NoReturn

# TensorFlow only feeds data in ganjax: keep its C++ start-up chatter and oneDNN notice quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import logging

from ganjax.errors import GanjaxError  # pylint: disable=g-import-not-at-top

# Libraries whose INFO records (per-save orbax chatter, backend probing) drown the training log;
# their warnings and errors still show.
_QUIET_LIBRARIES = ("/orbax/", "/jax/_src/", "/clu/")


class _QuietLibraries(std_logging.Filter):

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING or
            not any(lib in record.pathname for lib in _QUIET_LIBRARIES))


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


def run(main: Callable[[list[str]], None], flags_parser=None) -> None:
  """`absl.app.run` with quiet library logs and `GanjaxError`s reported as one line."""

  def wrapped(argv: list[str]) -> None:
    logging.get_absl_handler().addFilter(_QuietLibraries())
    try:
      enable_compilation_cache()
      main(argv)
    except GanjaxError as e:
      fail(str(e))

  if flags_parser is None:
    app.run(wrapped)
  else:
    app.run(wrapped, flags_parser=flags_parser)
