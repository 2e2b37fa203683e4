"""``ganjax-train`` / ``python -m ganjax.main --config=dcgan --workdir=DIR``: trains a config.

``--config`` is a shipped config's name (`ganjax.configs.names`) or a config file's path. Any
config key can be overridden (``--config.batch_size=128``); an unknown key is an error before
any work starts. Running the same command again resumes from the latest checkpoint in DIR;
raising ``--config.num_train_steps`` continues a finished run. `ganjax.tasks` decides what the
config runs: a GAN, a population of GANs or a classifier.
"""

from __future__ import annotations

import re

from ganjax import cli  # first: sets up the process before TensorFlow and JAX load

from absl import app  # pylint: disable=g-import-not-at-top,g-bad-import-order
from absl import flags
from absl import logging
from ml_collections import config_flags

from ganjax import configs, tasks  # pylint: disable=g-import-not-at-top
from ganjax.runtime import distributed

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None,
                      "Directory for checkpoints, samples and TensorBoard events.")
  config_flags.DEFINE_config_file(
      "config", None, f"A config: a name ({', '.join(configs.names())}) or a file's path.",
      lock_config=True)
  flags.mark_flags_as_required(["config", "workdir"])


def _overrides(argv: list[str]) -> list[str]:
  return [a for a in argv[1:] if a.startswith("--config.")]


def _resolve_config(argv: list[str]) -> list[str]:
  """``--config=NAME`` / ``--config NAME`` -> the shipped config's path."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith("--config="):
      out[i] = "--config=" + configs.resolve(arg[len("--config="):])
    elif arg == "--config" and i + 1 < len(out):
      out[i + 1] = configs.resolve(out[i + 1])
  return out


def _missing_key(message: str) -> tuple[str, str | None]:
  """(the key, ml_collections' suggestion or None) from its error for a key a config lacks.

  The message is the key in quotes, quoted again and escaped one or two levels deep, followed
  for a near miss by ``Did you mean "KEY" instead of "MISSING"?``.
  """
  text = message.replace("\\", "")
  names = re.findall(r"'([A-Za-z_][\w.]*)'", text)
  suggestion = re.search(r'Did you mean "([\w.]+)"', text)
  return (names[0] if names else text.strip("\"' ")), suggestion and suggestion.group(1)


def parse_flags(argv: list[str]) -> list[str]:
  """Parses flags; a bad flag, config file or override key is a one-line error."""
  argv = _resolve_config(argv)
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as e:  # config_flags: an override names no config key
    missing, suggestion = _missing_key(str(e))
    culprits = [a.split("=")[0] for a in _overrides(argv)
                if missing in a.split("=")[0][len("--config."):].split(".")]
    where = culprits[0] if culprits else " ".join(_overrides(argv))
    hint = f"did you mean {suggestion!r}? " if suggestion else ""
    cli.fail(f"unknown config key {missing!r} in {where}; {hint}see "
             "ganjax/configs/default.py for the keys")
  except flags.Error as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    cli.fail(" ".join(lines[:1] + [line for line in lines[1:] if "Errno" in line]))
  return []


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    config = FLAGS.config
    config.to_dict()
  except OSError as e:  # config_flags defers a config file's load error to first use
    errno_lines = [line.strip() for line in str(e).splitlines() if "Errno" in line]
    cli.fail(f"cannot load the config file: {(errno_lines or str(e).splitlines())[0]}")
  logging.info("config:\n%s", config)
  distributed.initialize(config)  # before anything touches the JAX backend
  tasks.train_and_evaluate(config, FLAGS.workdir)


def run() -> None:
  """The console script."""
  define_flags()
  cli.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
