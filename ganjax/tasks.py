"""What a config runs, and how any run directory is loaded back: the one dispatcher.

A config runs one of three kinds of task: ``'gan'`` (the default), ``'population'`` (a GAN
config with ``population.size > 1``) or ``'classifier'`` (``task='classifier'``). `KINDS` maps
each to its task assembly (``make_task(config, run)``) and its loader; `train_and_evaluate`
trains any config in a workdir, and `load_run` gives back the config, models and restored state
of any run directory, which is how the command-line tools (generate, FID, visualize) read runs.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import ml_collections

from ganjax.classifier import trainer as classifier_trainer
from ganjax.errors import ConfigError
from ganjax.gan import trainer as gan_trainer
from ganjax.population import build as population_build
from ganjax.population import trainer as population_trainer
from ganjax.runtime import loop
from ganjax.runtime.run import Run
from ganjax.runtime.run_info import read_run_info

TASKS = ("gan", "classifier")


@dataclasses.dataclass(frozen=True)
class Kind:
  """A kind of task: how to assemble it and how to load its runs back."""

  make_task: Callable[[ml_collections.ConfigDict, Run], loop.Task]
  load: Callable[..., "LoadedRun"]
  members: Callable[[ml_collections.ConfigDict], int] = lambda config: 0


@dataclasses.dataclass(frozen=True)
class LoadedRun:
  """A run read back from its directory.

  Attributes:
    kind: ``'gan'``, ``'population'`` or ``'classifier'``.
    config: the run's config (a population member's own config: its seed and swept values).
    spec: the data spec it was trained with.
    state: the restored state (a population member's slice).
    gan: the models, optimizers and step options (None for a classifier run).
    discriminator: the discriminator network (the classifier of a classifier run).
    discriminator_variables: its variables in `state`.
  """

  kind: str
  config: ml_collections.ConfigDict
  spec: Any
  state: Any
  gan: Any
  discriminator: Any
  discriminator_variables: Any


KINDS: dict[str, Kind] = {
    "gan": Kind(gan_trainer.make_task, lambda *a: LoadedRun("gan", *gan_trainer.load(*a))),
    "population": Kind(population_trainer.make_task,
                       lambda *a: LoadedRun("population", *population_trainer.load(*a)),
                       members=lambda config: config.population.size),
    "classifier": Kind(classifier_trainer.make_task,
                       lambda *a: LoadedRun("classifier", *classifier_trainer.load(*a))),
}


def kind_of(config: ml_collections.ConfigDict) -> str:
  """The kind of task `config` runs (a one-line error for an unknown ``task``)."""
  if config.task not in TASKS:
    raise ConfigError(f"unknown task {config.task!r}; choose one of {list(TASKS)}")
  if config.task == "gan" and population_build.population_of(config) is not None:
    return "population"
  return config.task


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> Any:
  """Trains (or resumes) the run `config` describes in `workdir`; returns the final state (a
  population's stacked)."""
  kind = KINDS[kind_of(config)]
  run = Run(workdir, config.keep_checkpoints, members=kind.members(config))
  try:
    return loop.train(kind.make_task(config, run), run)
  finally:
    run.close()


def load_run(workdir: str, step: int | None = None, member: int | None = None) -> LoadedRun:
  """The run in `workdir` at its checkpoint `step` (default: the latest); of a population,
  member `member` (required there, an error elsewhere). Needs no data: the data spec comes from
  the run's ``run_info.json``."""
  config, spec = read_run_info(workdir)
  name = kind_of(config)
  if name != "population" and member is not None:
    raise ConfigError(f"{workdir!r} is a single run, not a population: it has no member {member}")
  if name == "population" and member is None:
    raise ConfigError(f"{workdir!r} is a population of {config.population.size} members; "
                      "choose one with --member")
  directory = os.path.join(workdir, "checkpoints")
  args = (config, spec, directory, step) + ((member,) if name == "population" else ())
  return KINDS[name].load(*args)
