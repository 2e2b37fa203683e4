"""What `python -m ganjax.main` runs, by ``config.task``: a registry of trainers.

``'gan'`` (the default, and what configs without a ``task`` key run): `ganjax.train`;
``'classifier'``: a discriminator trained alone as a classifier, `ganjax.classify`.
"""

from __future__ import annotations

from typing import Any, Callable

import ml_collections

from ganjax import classify, train
from ganjax.errors import ConfigError

Trainer = Callable[[ml_collections.ConfigDict, str], Any]

TASKS: dict[str, Trainer] = {
    "gan": train.train_and_evaluate,
    "classifier": classify.train_and_evaluate,
}


def task_of(config: ml_collections.ConfigDict) -> str:
  return config.get("task", "gan")


def get_trainer(config: ml_collections.ConfigDict) -> Trainer:
  """The `train_and_evaluate(config, workdir)` of the config's task."""
  name = task_of(config)
  if name not in TASKS:
    raise ConfigError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
  return TASKS[name]
