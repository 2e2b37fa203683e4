"""Command line: ``python -m ganjax.main --config=configs/dcgan.py --workdir=DIR``.

Any config key can be overridden (``--config.batch_size=128``); an unknown key is an error
before any work starts. Running the same command again resumes from the latest checkpoint in
DIR; raising ``--config.num_train_steps`` continues a finished run.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow only feeds data here

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
from ml_collections import config_flags

from ganjax import train  # pylint: disable=g-import-not-at-top
from ganjax.errors import GanjaxError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples and TensorBoard events.")
config_flags.DEFINE_config_file("config", None, "A config file from configs/.",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])



# Libraries whose INFO records (per-save orbax chatter, backend probing) drown the training log;
# their warnings and errors still show.
_QUIET_LIBRARIES = ("/orbax/", "/jax/_src/", "/clu/")


class _QuietLibraries(std_logging.Filter):

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING or
            not any(lib in record.pathname for lib in _QUIET_LIBRARIES))


def _fail(message: str) -> None:
  sys.stderr.write(f"ganjax: error: {message}\n")
  sys.exit(1)


def _overrides(argv: list[str]) -> list[str]:
  return [a for a in argv[1:] if a.startswith("--config.")]


def parse_flags(argv: list[str]) -> list[str]:
  """Parses flags; a bad flag, config file or override key is a one-line error."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as e:  # config_flags: an override names no config key
    missing = str(e).strip("\"' ").split("'")[0]
    culprits = [a.split("=")[0] for a in _overrides(argv)
                if missing in a.split("=")[0][len("--config."):].split(".")]
    where = culprits[0] if culprits else " ".join(_overrides(argv))
    _fail(f"unknown config key {missing!r} in {where}; see the config file for the keys")
  except flags.Error as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    _fail(" ".join(lines[:1] + [line for line in lines[1:] if "Errno" in line]))
  return []


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    config = FLAGS.config
    config.to_dict()
  except OSError as e:  # config_flags defers a config file's load error to first use
    errno_lines = [line.strip() for line in str(e).splitlines() if "Errno" in line]
    _fail(f"cannot load the config file: {(errno_lines or str(e).splitlines())[0]}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  logging.info("config:\n%s", config)
  try:
    train.train_and_evaluate(config, FLAGS.workdir)
  except GanjaxError as e:
    logging.flush()
    _fail(str(e))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
