"""The training loop of a population (`ganjax.population`): one `Trainer` over stacked states.

Differences from a single run, all in outputs (the loop is `ganjax.train.Trainer.run`):

* one jitted step, ``jax.vmap(train_step)`` over the members, state replicated over the mesh
  and each member's batch split over the ``'data'`` axis;
* TensorBoard: member i's scalars and sample grids in ``WORKDIR/member_<i>/`` (one run per
  member in TensorBoard), the mean and standard deviation across members in ``WORKDIR/``;
* sample grids ``WORKDIR/samples/member_<i>/step_<step>.png`` (the same latents for every
  member);
* one orbax checkpoint of the stacked state per step (resume works as for a single run);
* with ``eval_every_steps``: every member's FID / IS (``member_<i>/fid``, ...; latents of the
  member's seed) and best-FID checkpoint in ``WORKDIR/member_<i>/best_fid/``, and its
  discriminator's test accuracy when it has an auxiliary classifier;
* at the end ``WORKDIR/population_summary.json`` and console lines: every member's seed, swept
  values and final metrics (the means over the last logging interval, and the last evaluation),
  and their mean and std.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from absl import logging
from clu import metric_writers
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np

from ganjax import class_accuracy, data, images, population
from ganjax.eval import in_training
from ganjax.state import GANState
from ganjax.train import Metrics, Trainer, MetricLog

SUMMARY_FILE = "population_summary.json"


def member_key(member: int, name: str) -> str:
  return f"member_{member}/{name}"


class _MemberWriters(metric_writers.MetricWriter):
  """Routes ``member_<i>/<name>`` scalars and images to member i's writer, the rest to `main`."""

  def __init__(self, main: metric_writers.MetricWriter,
               members: list[metric_writers.MetricWriter]):
    self.main, self.members = main, members

  def _split(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rest, per_member = {}, [{} for _ in self.members]
    for key, value in values.items():
      head, _, name = key.partition("/")
      if head.startswith("member_") and name and head[len("member_"):].isdigit():
        per_member[int(head[len("member_"):])][name] = value
      else:
        rest[key] = value
    return rest, per_member

  def _write(self, method: str, step: int, values: dict[str, Any]) -> None:
    rest, per_member = self._split(values)
    if rest:
      getattr(self.main, method)(step, rest)
    for writer, member_values in zip(self.members, per_member):
      if member_values:
        getattr(writer, method)(step, member_values)

  def write_scalars(self, step, scalars):
    self._write("write_scalars", step, scalars)

  def write_images(self, step, images):
    self._write("write_images", step, images)

  def write_summaries(self, step, values, metadata=None):
    self.main.write_summaries(step, values, metadata)

  def write_texts(self, step, texts):
    self.main.write_texts(step, texts)

  def write_videos(self, step, videos):
    self.main.write_videos(step, videos)

  def write_audios(self, step, audios, *, sample_rate):
    self.main.write_audios(step, audios, sample_rate=sample_rate)

  def write_histograms(self, step, arrays, num_buckets=None):
    self.main.write_histograms(step, arrays, num_buckets)

  def write_hparams(self, hparams):
    # Lists and strings that are not plain scalars become text (TensorBoard's hparams take
    # numbers, strings and bools).
    self.main.write_hparams({k: v if isinstance(v, (bool, int, float, str)) else str(v)
                             for k, v in hparams.items()})

  def flush(self):
    for writer in [self.main, *self.members]:
      writer.flush()

  def close(self):
    for writer in [self.main, *self.members]:
      writer.close()


class PopulationBatches:
  """Batches of every member: one iterator for shared batches, else one per member's seed."""

  def __init__(self, make: Callable[[int], data.BatchIterator], seeds: tuple[int, ...],
               same_batches: bool):
    self.same_batches = same_batches
    self._iterators = [make(seeds[0])] if same_batches else [make(s) for s in seeds]

  def __iter__(self):
    return self

  def __next__(self) -> tuple[int, dict[str, np.ndarray]]:
    items = [next(it) for it in self._iterators]
    if self.same_batches:
      return items[0]
    return items[0][0], jax.tree.map(lambda *xs: np.stack(xs), *[b for _, b in items])

  def close(self) -> None:
    for it in self._iterators:
      it.close()


class PopulationTrainer(Trainer):
  """A `Trainer` whose state holds all members of ``config.population`` on a leading axis."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    super().__init__(config, workdir)
    spec = self.gan.data
    self.pop = population.build_population(config, spec, NamedSharding(self.mesh, P("data")))
    self.gan = self.pop.gan
    k = self.pop.size
    if not self.pop.population.same_batches:
      self.batch_sharding = NamedSharding(self.mesh, P(None, None, "data"))
    self.sample = jax.jit(self.pop.sample_fn(), out_shardings=self.replicated)
    if self.is_chief:  # the base class's writer (WORKDIR) and one per member
      self.writer = _MemberWriters(self.writer, [
          metric_writers.AsyncWriter(metric_writers.SummaryWriter(
              os.path.join(workdir, f"member_{i}"))) for i in range(k)])
    self.final_metrics: list[Metrics] | None = None
    self.eval_metrics: list[Metrics] = [{} for _ in range(k)]

  def member_dir(self, member: int) -> str:
    return os.path.join(self.workdir, f"member_{member}")

  def make_evaluation(self) -> list[in_training.Evaluation] | None:
    """One `Evaluation` per member (best-FID checkpoint in ``member_<i>/``), one shared scorer."""
    if not in_training.evaluates_fid(self.config):
      return None
    scorer = in_training.Scorer(self.config, self.gan, self.mesh, self.dataset)
    return [in_training.Evaluation(scorer, self.member_dir(i), self.writer, seed=seed,
                                   is_chief=self.is_chief, prefix=member_key(i, ""),
                                   label=f"member {i}")
            for i, seed in enumerate(self.pop.seeds)]

  def evaluate(self, step: int, state: GANState) -> None:
    """Every member's FID / IS and test accuracy, as its own single run would log them."""
    for i in range(self.pop.size):
      member = population.member_state(state, i)
      if self.evaluation is not None:
        self.eval_metrics[i].update(self.evaluation[i](step, member))
      if self.test_accuracy is not None:
        self.eval_metrics[i]["d_test_class_acc"] = class_accuracy.log_gan_test_accuracy(
            self.test_accuracy, step, member, self.writer, prefix=member_key(i, ""),
            label=f"member {i}")

  def close(self) -> None:
    evaluations, self.evaluation = self.evaluation, None
    for evaluation in evaluations or []:
      evaluation.close()
    super().close()

  def state_step(self, state: GANState) -> int:
    return int(jax.device_get(state.step)[0])  # the members step together

  def init_fn(self) -> tuple[Callable[[jax.Array], GANState], jax.Array]:
    return self.pop.init, self.pop.rngs()

  def _compiled_step(self) -> Callable[..., Any]:
    step = jax.jit(self.pop.train_step(),
                   in_shardings=(self.replicated, self.batch_sharding, self.replicated),
                   out_shardings=(self.replicated, self.replicated), donate_argnums=0)
    hyper = {name: jnp.asarray(v) for name, v in self.pop.hyper.items()}
    return lambda state, batch: step(state, batch, hyper)

  def batch_iterator(self, start: int) -> PopulationBatches:
    config = self.config

    def make(seed: int) -> data.BatchIterator:
      return data.BatchIterator(
          self.dataset, seed=seed, batch_size=config.batch_size, n_critic=config.n_critic,
          start_step=start, process_index=jax.process_index(),
          process_count=jax.process_count())

    return PopulationBatches(make, self.pop.seeds, self.pop.population.same_batches)

  def global_batch(self, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    batch_axis = 1 if self.pop.population.same_batches else 2

    def make(x):
      shape = x.shape[:batch_axis] + (self.config.batch_size,) + x.shape[batch_axis + 1:]
      return jax.make_array_from_process_local_data(self.batch_sharding, x, shape)

    return jax.tree.map(make, local)

  def metric_values(self, metrics: dict[str, jax.Array]) -> Metrics:
    values = jax.device_get(metrics)
    return {member_key(i, k): float(v[i]) for k, v in values.items() for i in range(len(v))}

  def _per_member(self, means: Metrics) -> list[Metrics]:
    members = [{} for _ in range(self.pop.size)]
    for key, value in means.items():
      head, _, name = key.partition("/")
      members[int(head[len("member_"):])][name] = value
    return members

  def write_metrics(self, step: int, log: MetricLog, means: Metrics, rate: float) -> None:
    members = self._per_member(means)
    self.final_metrics = members
    spread = population.summarize(members)
    logging.info("%s", log.line(step, spread["mean"], rate).replace(
        " | ", f" | mean of {self.pop.size} members: ", 1))
    scalars = {**means, **{f"mean/{k}": v for k, v in spread["mean"].items()},
               **{f"std/{k}": v for k, v in spread["std"].items()}}
    if not np.isnan(rate):
      scalars["steps_per_sec"] = rate
    self.writer.write_scalars(step, scalars)

  def write_samples(self, step: int, state: GANState) -> None:
    samples = self.sample(state.sampling_variables, self.sample_z, self.sample_labels)
    if not self.is_chief:
      return
    grids = {}
    for i, member_samples in enumerate(np.asarray(jax.device_get(samples))):
      grid = images.make_grid(member_samples, rows=self.sample_rows)
      images.save_png(grid, os.path.join(self.workdir, "samples", f"member_{i}",
                                         f"step_{step}.png"))
      grids[member_key(i, "samples")] = grid[None]
    self.writer.write_images(step, grids)

  def run(self) -> GANState:
    state = super().run()
    if self.final_metrics is not None and self.is_chief:
      members = [{**m, **e} for m, e in zip(self.final_metrics, self.eval_metrics)]
      self.write_summary(self.state_step(state), members)
    return state

  def write_summary(self, step: int, members: list[Metrics]) -> dict[str, Any]:
    """Writes ``population_summary.json`` and logs one line per member and the spread."""
    spread = population.summarize(members)
    summary = {
        "step": step,
        "members": [{"member": i, "seed": seed, "values": self.pop.population.values(i),
                     "metrics": metrics}
                    for i, (seed, metrics) in enumerate(zip(self.pop.seeds, members))],
        **spread,
    }
    path = os.path.join(self.workdir, SUMMARY_FILE)
    with open(path + ".tmp", "w") as f:
      json.dump(summary, f, indent=2)
    os.replace(path + ".tmp", path)
    keys = sorted(spread["mean"], key=lambda k: (not k.endswith("loss"), k))
    for entry in summary["members"]:
      values = " ".join(f"{k}={entry['metrics'][k]:.4g}" for k in keys if k in entry["metrics"])
      swept = "".join(f" {k}={v:g}" for k, v in entry["values"].items())
      logging.info("member %d (seed %d%s) at step %d | %s", entry["member"], entry["seed"],
                   swept, step, values)
    logging.info("population of %d at step %d | %s", len(members), step,
                 " ".join(f"{k}={spread['mean'][k]:.4g}+-{spread['std'][k]:.2g}" for k in keys))
    return summary


def trainer_for(config: ml_collections.ConfigDict, workdir: str) -> Trainer:
  """A `PopulationTrainer` when the config asks for a population, else a `Trainer`."""
  if population.population_of(config) is not None:
    return PopulationTrainer(config, workdir)
  return Trainer(config, workdir)
