"""The classifier task: a discriminator trained alone on labels (``config.task='classifier'``).

`make_task(config, run)` assembles what `ganjax.runtime.loop.train` runs: a discriminator with
its auxiliary-classifier head and an optax optimizer (`build_classifier`), the pure step of
`ganjax.classifier.step` jitted over the run's mesh, batches of the training split with the
augmentation of ``config.augment`` (`ganjax.data.augment`) and two actions: the console line
and TensorBoard train loss / accuracy every ``log_every_steps``, and after every epoch the
epoch's train accuracy (the mean over its batches, augmented, train mode) with the test split's
accuracy and cross-entropy. It checkpoints after every epoch; running the same command again
resumes (batches are a pure function of (seed, step)).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from absl import logging
import jax
import ml_collections
import optax

from ganjax import data, models
from ganjax.classifier.accuracy import SplitAccuracy
from ganjax.classifier.step import ClassifierState, create_classifier_state, make_classifier_step
from ganjax.data import augment
from ganjax.errors import ConfigError
from ganjax.gan import optim
from ganjax.gan.build import dtype_of
from ganjax.gan.trainer import log_action, write_hparams
from ganjax.ops import conv
from ganjax.runtime import checkpoints, mesh as mesh_lib
from ganjax.runtime.loop import Action, Task
from ganjax.runtime.metrics import MetricLog
from ganjax.runtime.run import Run


def build_classifier(config: ml_collections.ConfigDict, spec: data.DataSpec,
                     steps_per_epoch: int, conv_backend: str = "auto"
                     ) -> tuple[Any, optax.GradientTransformation]:
  """The network (a discriminator with an 'ac' head) and the optimizer a config describes."""
  options = config.discriminator.to_dict()
  if options.get("condition", "ac") != "ac":
    raise ConfigError("a classifier needs the auxiliary-classifier head: set "
                      "discriminator.condition='ac'")
  options["condition"] = "ac"
  network = models.build_discriminator(
      options, image_size=spec.image_shape[0], channels=spec.image_shape[2],
      num_classes=spec.num_classes, dtype=dtype_of(config.dtype), conv_backend=conv_backend)
  tx = optim.make_optimizer(config.optimizer.to_dict(), config.num_epochs * steps_per_epoch,
                            "optimizer")
  return network, tx


def init_fn(network: Any, tx: optax.GradientTransformation, spec: data.DataSpec):
  """The pure state initializer of a classifier run."""
  return functools.partial(create_classifier_state, discriminator=network, tx=tx,
                           image_shape=spec.image_shape)


def _epoch_action(config: ml_collections.ConfigDict, run: Run, log: MetricLog,
                  test_accuracy: SplitAccuracy, steps_per_epoch: int) -> Action:
  started = [time.monotonic()]

  def end_epoch(step: int, state: ClassifierState) -> None:
    means, _ = log.flush(step)
    test = test_accuracy(state.model.variables)
    scalars = {"train_accuracy": means.get("accuracy", float("nan")),
               "train_loss": means.get("loss", float("nan")),
               "test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "epoch": step // steps_per_epoch}
    logging.info("epoch %d/%d | train_accuracy=%.4f train_loss=%.4f | test_accuracy=%.4f "
                 "test_loss=%.4f | %.1f s", step // steps_per_epoch, config.num_epochs,
                 scalars["train_accuracy"], scalars["train_loss"], test["accuracy"],
                 test["loss"], time.monotonic() - started[0])
    run.writer.write_scalars(step, scalars)
    started[0] = time.monotonic()

  return Action("epoch", steps_per_epoch, end_epoch)


def make_task(config: ml_collections.ConfigDict, run: Run) -> Task:
  """The classifier task of `config` in `run`."""
  mesh_lib.check_batch_size(config.batch_size, run.mesh)
  data_dir = config.data_dir or None
  train_data = data.load_dataset(config.dataset, config.split, config.image_size,
                                 data_dir=data_dir)
  test_data = data.load_dataset(config.dataset, config.test_split, config.image_size,
                                data_dir=data_dir)
  if len(train_data) < config.batch_size:
    raise ConfigError(f"batch_size={config.batch_size} exceeds the {len(train_data)} "
                      "training examples")
  steps_per_epoch = len(train_data) // config.batch_size
  spec = data.DataSpec(train_data.image_shape, train_data.class_names)
  network, tx = build_classifier(config, spec, steps_per_epoch, run.conv_backend)
  transform = augment.from_config(config.augment)
  run.write_run_info(config, spec, train_data.source)
  batches = mesh_lib.batch_sharding(run.mesh)
  step = jax.jit(make_classifier_step(network, tx), in_shardings=(run.replicated, batches),
                 out_shardings=(run.replicated, run.replicated), donate_argnums=0)
  total = config.num_epochs * steps_per_epoch
  rate_log, epoch_log = MetricLog(total_steps=total), MetricLog(total_steps=total)
  test_accuracy = SplitAccuracy(network, test_data, run.mesh, config.eval_batch_size)
  return Task(
      init=init_fn(network, tx, spec), rng=jax.random.PRNGKey(config.seed), step=step,
      batches=lambda start: data.BatchIterator(
          train_data, seed=config.seed, batch_size=config.batch_size, start_step=start,
          process_index=jax.process_index(), process_count=jax.process_count(),
          transform=transform),
      to_global=functools.partial(mesh_lib.to_global_batch, sharding=batches,
                                  batch_size=config.batch_size),
      total_steps=total, checkpoint_every_steps=steps_per_epoch, logs=(rate_log, epoch_log),
      actions=(log_action(run, rate_log, config.log_every_steps),
               _epoch_action(config, run, epoch_log, test_accuracy, steps_per_epoch)),
      on_start=write_hparams(run, config))


def load(config: ml_collections.ConfigDict, spec: data.DataSpec, directory: str,
         step: int | None) -> tuple[Any, ...]:
  """The pieces of `ganjax.tasks.LoadedRun` of the classifier run whose checkpoints are in
  `directory`: config, spec, state, no GAN, the network and its variables."""
  mesh = mesh_lib.make_mesh()
  # The optimizer's schedule length does not change the state's structure.
  network, tx = build_classifier(config, spec, 1, conv.backend_for(mesh))
  state = checkpoints.restore_latest(directory, init_fn(network, tx, spec),
                                     jax.random.PRNGKey(config.seed), mesh_lib.replicated(mesh),
                                     step)
  return config, spec, state, None, network, state.model.variables
