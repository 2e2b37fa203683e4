"""The population task (`ganjax.population.build`): the GAN task's pieces over stacked states.

What differs from a single run (`ganjax.gan.trainer`), all in outputs:

* one jitted step, ``jax.vmap(train_step)`` over the members, state replicated over the mesh
  and each member's batch split over the ``'data'`` axis;
* TensorBoard: member i's scalars and sample grids in ``WORKDIR/member_<i>/`` (one run per
  member), the mean and standard deviation across members in ``WORKDIR/``;
* sample grids ``WORKDIR/samples/member_<i>/step_<step>.png`` (the same latents for every
  member);
* one orbax checkpoint of the stacked state per step (resume works as for a single run);
* with ``eval_every_steps``: every member's metrics of ``eval_metrics`` (``member_<i>/fid``, ...;
  latents of the member's seed) and best checkpoint by ``eval_best_metric`` in
  ``WORKDIR/member_<i>/best_<metric>/``, and its
  discriminator's test accuracy when it has an auxiliary classifier;
* at the end ``WORKDIR/population_summary.json`` and console lines: every member's seed, swept
  values and final metrics (the means over the last logging interval, and the last evaluation),
  and their mean and std.
"""

from __future__ import annotations

from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganjax import data
from ganjax.classifier import accuracy as class_accuracy
from ganjax.eval import in_training
from ganjax.gan import trainer as gan_trainer
from ganjax.ops import conv
from ganjax.population.build import (PopulationGAN, build_population, member_config,
                                    member_state, summarize)
from ganjax.runtime import checkpoints, files, mesh as mesh_lib
from ganjax.runtime.loop import Action, Task
from ganjax.runtime.metrics import Metrics, MetricLog
from ganjax.runtime.run import Run

SUMMARY_FILE = "population_summary.json"


def member_key(member: int, name: str) -> str:
  return f"member_{member}/{name}"


class MemberBatches:
  """Batches of every member: one iterator for shared batches, else one per member's seed."""

  def __init__(self, config: ml_collections.ConfigDict, dataset: data.ImageDataset,
               pop: PopulationGAN, start: int):
    self.same_batches = pop.population.same_batches
    seeds = pop.seeds[:1] if self.same_batches else pop.seeds
    self._iterators = [gan_trainer.batch_iterator(config, dataset, s, start) for s in seeds]

  def __next__(self) -> tuple[int, dict[str, np.ndarray]]:
    items = [next(it) for it in self._iterators]
    if self.same_batches:
      return items[0]
    return items[0][0], jax.tree.map(lambda *xs: np.stack(xs), *[b for _, b in items])

  def close(self) -> None:
    for it in self._iterators:
      it.close()


def per_member(values: Metrics, size: int) -> list[Metrics]:
  """``{'member_<i>/<name>': v}`` -> one dict of names per member."""
  members = [{} for _ in range(size)]
  for key, value in values.items():
    head, _, name = key.partition("/")
    members[int(head[len("member_"):])][name] = value
  return members


def write_summary(run: Run, pop: PopulationGAN, step: int, members: list[Metrics]
                  ) -> dict[str, Any]:
  """Writes ``population_summary.json`` and logs one line per member and the spread."""
  spread = summarize(members)
  summary = {
      "step": step,
      "members": [{"member": i, "seed": seed, "values": pop.population.values(i),
                   "metrics": metrics}
                  for i, (seed, metrics) in enumerate(zip(pop.seeds, members))],
      **spread,
  }
  files.write_json(run.path(SUMMARY_FILE), summary)
  keys = sorted(spread["mean"], key=lambda k: (not k.endswith("loss"), k))
  for entry in summary["members"]:
    values = " ".join(f"{k}={entry['metrics'][k]:.4g}" for k in keys if k in entry["metrics"])
    swept = "".join(f" {k}={v:g}" for k, v in entry["values"].items())
    logging.info("member %d (seed %d%s) at step %d | %s", entry["member"], entry["seed"],
                 swept, step, values)
  logging.info("population of %d at step %d | %s", len(members), step,
               " ".join(f"{k}={spread['mean'][k]:.4g}+-{spread['std'][k]:.2g}" for k in keys))
  return summary


def _evaluation_action(config: ml_collections.ConfigDict, run: Run, pop: PopulationGAN,
                       dataset: data.ImageDataset, results: list[Metrics]) -> Action | None:
  """Every member's FID / IS and test accuracy, as its own single run would log them."""
  evaluations = None
  if in_training.evaluates_fid(config):
    scorer = in_training.Scorer(config, pop.gan, run.mesh, dataset, run.interrupted)
    evaluations = [in_training.Evaluation(
        scorer, run.path(f"member_{i}"), run.writer, seed=seed, is_chief=run.is_chief,
        prefix=member_key(i, ""), label=f"member {i}") for i, seed in enumerate(pop.seeds)]
  test_accuracy = class_accuracy.gan_test_accuracy(config, pop.gan.discriminator, run.mesh)
  if evaluations is None and test_accuracy is None:
    return None

  def evaluate(step: int, state: Any) -> None:
    for i in range(pop.size):
      member = member_state(state, i)
      if evaluations is not None:
        results[i].update(evaluations[i](step, member))
      if test_accuracy is not None:
        results[i]["d_test_class_acc"] = class_accuracy.log_gan_test_accuracy(
            test_accuracy, step, member, run.writer, prefix=member_key(i, ""),
            label=f"member {i}")

  return Action("evaluate", config.eval_every_steps, evaluate)


def make_task(config: ml_collections.ConfigDict, run: Run) -> Task:
  """The population task of `config` in `run` (a `Run` with one writer per member)."""
  dataset = gan_trainer.load_training_data(config, run)
  spec = data.DataSpec(dataset.image_shape, dataset.class_names)
  pop = build_population(config, spec, mesh_lib.data_sharding(run.mesh), run.conv_backend)
  k = pop.size
  last_means: list[Metrics] = [{} for _ in range(k)]
  eval_results: list[Metrics] = [{} for _ in range(k)]
  evaluate = _evaluation_action(config, run, pop, dataset, eval_results)
  batch_axis = 1 if pop.population.same_batches else 2
  batches = mesh_lib.batch_sharding(run.mesh, batch_axis)
  step = jax.jit(pop.train_step(), in_shardings=(run.replicated, batches, run.replicated),
                 out_shardings=(run.replicated, run.replicated), donate_argnums=0)
  hyper = {name: jnp.asarray(v) for name, v in pop.hyper.items()}
  log = MetricLog(total_steps=config.num_train_steps)

  def write_means(step_: int, means: Metrics, rate: float) -> None:
    last_means[:] = per_member(means, k)
    spread = summarize(last_means)
    logging.info("%s", log.line(step_, spread["mean"], rate).replace(
        " | ", f" | mean of {k} members: ", 1))
    scalars = {**means, **{f"mean/{n}": v for n, v in spread["mean"].items()},
               **{f"std/{n}": v for n, v in spread["std"].items()}}
    run.writer.write_scalars(step_, scalars if np.isnan(rate) else
                             {**scalars, "steps_per_sec": rate})

  def metric_values(metrics: dict[str, jax.Array]) -> Metrics:
    values = jax.device_get(metrics)
    return {member_key(i, n): float(v[i]) for n, v in values.items() for i in range(k)}

  def on_end(state: Any) -> None:
    if run.is_chief and any(last_means):
      write_summary(run, pop, int(jax.device_get(state.step)[0]),
                    [{**m, **e} for m, e in zip(last_means, eval_results)])

  samples = gan_trainer.sample_grids(run, pop.sample_fn(), config.seed, pop.gan.generator,
                                     [f"member_{i}" for i in range(k)])
  actions = [gan_trainer.log_action(run, log, config.log_every_steps, write_means),
             Action("samples", config.sample_every_steps, samples)]
  return Task(
      init=pop.init, rng=pop.rngs(), step=lambda state, batch: step(state, batch, hyper),
      batches=lambda start: MemberBatches(config, dataset, pop, start),
      to_global=lambda local: mesh_lib.to_global_batch(local, batches, config.batch_size,
                                                       batch_axis),
      total_steps=config.num_train_steps, checkpoint_every_steps=config.checkpoint_every_steps,
      logs=(log,), actions=tuple(actions) + ((evaluate,) if evaluate else ()),
      metric_values=metric_values,
      step_of=lambda state: int(jax.device_get(state.step)[0]),  # the members step together
      on_start=gan_trainer.write_hparams(run, config), on_end=on_end)


def load(config: ml_collections.ConfigDict, spec: data.DataSpec, directory: str,
         step: int | None, member: int) -> tuple[Any, ...]:
  """The pieces of `ganjax.tasks.LoadedRun` of member `member` of the population whose
  checkpoints are in `directory`: its config, spec, state, GAN, discriminator and variables."""
  config_i = member_config(config, member)  # checks the member's range
  mesh = mesh_lib.make_mesh()
  pop = build_population(config, spec, conv_backend=conv.backend_for(mesh))
  stacked = checkpoints.restore_latest(directory, pop.init, pop.rngs(),
                                       mesh_lib.replicated(mesh), step)
  state = member_state(stacked, member)
  return config_i, spec, state, pop.gan, pop.gan.discriminator, state.discriminator.variables
