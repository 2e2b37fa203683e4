"""The GAN task: a pure `train_step`, its state initializer, batches and periodic actions.

`make_task(config, run)` assembles what `ganjax.runtime.loop.train` runs for one GAN:

* the models, optimizers and step options of the config (`ganjax.gan.build`), the step jitted
  over the run's mesh (state replicated and donated, batch split on ``'data'``);
* batches: `ganjax.data.BatchIterator` (a pure function of (seed, step));
* actions: the console line and TensorBoard scalars every ``log_every_steps``, the sample grid
  ``WORKDIR/samples/step_<step>.png`` every ``sample_every_steps``, the metrics of ``eval_metrics`` with
  the best checkpoint by ``eval_best_metric`` (`ganjax.eval.in_training`) and, for auxiliary-classifier runs, the
  discriminator's test accuracy every ``eval_every_steps``;
* checkpoints every ``checkpoint_every_steps``.

The pieces a population shares with a single run (the training data, the fixed sample latents,
the grid writer, the log action) are here too; `ganjax.population.trainer` assembles them over
stacked states.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganjax import data
from ganjax.classifier import accuracy as class_accuracy
from ganjax.data import images
from ganjax.eval import in_training
from ganjax.gan.build import GAN, build_gan
from ganjax.ops import conv
from ganjax.runtime import checkpoints, files, mesh as mesh_lib
from ganjax.runtime.loop import Action, Task
from ganjax.runtime.metrics import Metrics, MetricLog, flatten_config
from ganjax.runtime.run import Run


def load_training_data(config: ml_collections.ConfigDict, run: Run) -> data.ImageDataset:
  """The training split, checked against the mesh; records ``run_info.json``."""
  mesh_lib.check_batch_size(config.batch_size, run.mesh)
  dataset = data.load_dataset(config.dataset, config.split, config.image_size,
                              data_dir=config.data_dir or None)
  run.write_run_info(config, data.DataSpec(dataset.image_shape, dataset.class_names),
                     dataset.source)
  return dataset


def fixed_sample_inputs(seed: int, generator: Any, columns: int = 8
                        ) -> tuple[jax.Array, jax.Array | None, int]:
  """The fixed latents (and labels) of the sample grids, and the grid's number of rows.

  Unconditional: an 8x8 grid. Conditional: one row per class, `columns` samples each.
  """
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3)
  if generator.num_classes:
    rows = generator.num_classes
    labels = jnp.repeat(jnp.arange(rows, dtype=jnp.int32), columns)
  else:
    rows, labels = 8, None
  z = jax.random.normal(key, (rows * columns, generator.z_dim), jnp.float32)
  return z, labels, rows


def sample_grids(run: Run, sample_fn: Callable[..., jax.Array], seed: int, generator: Any,
                 folders: list[str]) -> Callable[[int, Any], None]:
  """An action writing one grid per entry of `folders` (``''`` = ``samples/``, else
  ``samples/<folder>/``) from the sampling variables' images ``[len(folders), B, ...]`` (one
  generator: a leading axis of 1), to PNG files and TensorBoard (``<folder>/samples``)."""
  sample = jax.jit(sample_fn, out_shardings=run.replicated)
  z, labels, rows = fixed_sample_inputs(seed, generator)

  def write(step: int, state: Any) -> None:
    out = sample(state.sampling_variables, z, labels)
    if not run.is_chief:
      return
    out = np.asarray(jax.device_get(out)).reshape((len(folders), -1) + out.shape[-3:])
    grids = {}
    for folder, member_images in zip(folders, out):
      grid = images.make_grid(member_images, rows=rows)
      files.write_png(run.path("samples", folder, f"step_{step}.png"), grid)
      grids[f"{folder}/samples" if folder else "samples"] = grid[None]
    run.writer.write_images(step, grids)

  return write


def log_action(run: Run, log: MetricLog, every_steps: int,
               write: Callable[[int, Metrics, float], None] | None = None) -> Action:
  """The console line and TensorBoard scalars of the steps since the last one (`write`
  replaces the default: one line of the means, the means and steps/s as scalars)."""

  def default_write(step: int, means: Metrics, rate: float) -> None:
    logging.info("%s", log.line(step, means, rate))
    run.writer.write_scalars(step, means if np.isnan(rate) else {**means, "steps_per_sec": rate})

  def act(step: int, state: Any) -> None:
    del state
    means, rate = log.flush(step)
    (write or default_write)(step, means, rate)

  return Action("log", every_steps, act)


def write_hparams(run: Run, config: ml_collections.ConfigDict) -> Callable[[int], None]:
  """The `Task.on_start` that records the config as TensorBoard hparams on a fresh run."""

  def on_start(start: int) -> None:
    if run.is_chief and start == 0:
      run.writer.write_hparams({k: v if isinstance(v, (bool, int, float, str)) else str(v)
                                for k, v in flatten_config(config.to_dict())})

  return on_start


def batch_iterator(config: ml_collections.ConfigDict, dataset: data.ImageDataset, seed: int,
                   start: int) -> data.BatchIterator:
  """This process's slices of the batches of steps start + 1, ... for data order `seed`."""
  return data.BatchIterator(dataset, seed=seed, batch_size=config.batch_size,
                            n_critic=config.n_critic, start_step=start,
                            process_index=jax.process_index(),
                            process_count=jax.process_count())


def evaluation_action(config: ml_collections.ConfigDict, run: Run, gan: GAN,
                      dataset: data.ImageDataset) -> Action | None:
  """The sample metrics (best checkpoint by ``eval_best_metric``) and the discriminator's test accuracy, or None."""
  evaluation = in_training.make_evaluation(config, run.workdir, gan, run.mesh, dataset,
                                           run.writer, run.interrupted)
  test_accuracy = class_accuracy.gan_test_accuracy(config, gan.discriminator, run.mesh)
  if evaluation is None and test_accuracy is None:
    return None

  def evaluate(step: int, state: Any) -> None:
    if evaluation is not None:
      evaluation(step, state)
    if test_accuracy is not None:
      class_accuracy.log_gan_test_accuracy(test_accuracy, step, state, run.writer)

  return Action("evaluate", config.eval_every_steps, evaluate)


def make_task(config: ml_collections.ConfigDict, run: Run) -> Task:
  """The single-GAN task of `config` in `run`."""
  dataset = load_training_data(config, run)
  spec = data.DataSpec(dataset.image_shape, dataset.class_names)
  gan = build_gan(config, spec, mesh_lib.data_sharding(run.mesh), run.conv_backend)
  evaluate = evaluation_action(config, run, gan, dataset)  # config errors before any work
  batches = mesh_lib.batch_sharding(run.mesh)
  step = jax.jit(gan.train_step(), in_shardings=(run.replicated, batches),
                 out_shardings=(run.replicated, run.replicated), donate_argnums=0)
  log = MetricLog(total_steps=config.num_train_steps)
  actions = [log_action(run, log, config.log_every_steps),
             Action("samples", config.sample_every_steps,
                    sample_grids(run, gan.sample_fn(), config.seed, gan.generator, [""]))]
  return Task(
      init=gan.init, rng=jax.random.PRNGKey(config.seed), step=step,
      batches=functools.partial(batch_iterator, config, dataset, config.seed),
      to_global=functools.partial(mesh_lib.to_global_batch, sharding=batches,
                                  batch_size=config.batch_size),
      total_steps=config.num_train_steps, checkpoint_every_steps=config.checkpoint_every_steps,
      logs=(log,), actions=tuple(actions) + ((evaluate,) if evaluate else ()),
      on_start=write_hparams(run, config))


def load(config: ml_collections.ConfigDict, spec: data.DataSpec, directory: str,
         step: int | None) -> tuple[Any, ...]:
  """The pieces of `ganjax.tasks.LoadedRun` of the GAN run whose checkpoints are in
  `directory`: config, spec, state, GAN, discriminator and its variables."""
  mesh = mesh_lib.make_mesh()
  gan = build_gan(config, spec, conv_backend=conv.backend_for(mesh))
  state = checkpoints.restore_latest(directory, gan.init, jax.random.PRNGKey(config.seed),
                                     mesh_lib.replicated(mesh), step)
  return config, spec, state, gan, gan.discriminator, state.discriminator.variables
