"""The classifier trainer: the imperative shell around `ganjax.classifier.make_classifier_step`.

``python -m ganjax.main --config=configs/classifier.py --workdir=DIR`` (``config.task =
'classifier'``) runs `train_and_evaluate`: it trains a discriminator network with its
auxiliary-classifier head on the labelled training split for ``num_epochs`` epochs under
`jax.jit` over the same mesh as the GAN trainer (batch split on ``'data'``, state replicated and
donated), with the augmentation of ``config.augment`` in the input pipeline. After every epoch
it writes the epoch's train accuracy (the mean over its batches, augmented, train mode) and the
test split's accuracy and cross-entropy to the console and TensorBoard, and an orbax checkpoint
in ``DIR/checkpoints/<step>/``. Running the same command again resumes from the latest
checkpoint; batches are a pure function of (seed, step), so a resumed run sees the batches an
uninterrupted one sees.
"""

from __future__ import annotations

import os
import time
from typing import Any

from absl import logging
from clu import metric_writers
import jax
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections
import optax

from ganjax import augment, checkpoints, data, models, optim
from ganjax.class_accuracy import SplitAccuracy
from ganjax.classifier import ClassifierState, create_classifier_state, make_classifier_step
from ganjax.errors import CheckpointError, ConfigError, NonFiniteLossError
from ganjax.experiment import DataSpec, dtype_of, read_run_info, write_run_info
# The GAN trainer's mesh, sharding and loop helpers: the classifier runs on the same layout.
from ganjax.train import (all_finite, batch_sharding, check_batch_size, flatten_config,
                          last_checkpoint_text, make_mesh, MetricLog, MetricsInFlight,
                          StopSignal, to_global_batch)


def build_classifier(config: ml_collections.ConfigDict, spec: DataSpec, steps_per_epoch: int
                     ) -> tuple[Any, optax.GradientTransformation]:
  """The network (a discriminator with an 'ac' head) and the optimizer a config describes."""
  options = config.discriminator.to_dict()
  if options.get("condition", "ac") != "ac":
    raise ConfigError("a classifier needs the auxiliary-classifier head: set "
                      "discriminator.condition='ac'")
  options["condition"] = "ac"
  network = models.build_discriminator(
      options, image_size=spec.image_shape[0], channels=spec.image_shape[2],
      num_classes=spec.num_classes, dtype=dtype_of(config.dtype))
  tx = optim.make_optimizer(config.optimizer.to_dict(), config.num_epochs * steps_per_epoch,
                            "optimizer")
  return network, tx


class ClassifierTrainer:
  """One classifier run in a workdir. `run()` trains to ``config.num_epochs``."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config = config
    self.workdir = workdir
    self.is_chief = jax.process_index() == 0
    self.mesh = make_mesh()
    check_batch_size(config.batch_size, self.mesh)
    data_dir = config.data_dir or None
    self.train_data = data.load_dataset(config.dataset, config.split, config.image_size,
                                        data_dir=data_dir)
    self.test_data = data.load_dataset(config.dataset, config.test_split, config.image_size,
                                       data_dir=data_dir)
    if len(self.train_data) < config.batch_size:
      raise ConfigError(f"batch_size={config.batch_size} exceeds the {len(self.train_data)} "
                        "training examples")
    self.steps_per_epoch = len(self.train_data) // config.batch_size
    self.total_steps = config.num_epochs * self.steps_per_epoch
    self.spec = DataSpec(self.train_data.image_shape, self.train_data.class_names)
    self.network, self.tx = build_classifier(config, self.spec, self.steps_per_epoch)
    self.transform = augment.from_config(config.get("augment"))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = batch_sharding(self.mesh)
    self.test_accuracy = SplitAccuracy(self.network, self.test_data, self.mesh,
                                       config.eval_batch_size)
    os.makedirs(workdir, exist_ok=True)
    if self.is_chief:
      write_run_info(workdir, config, self.spec, self.train_data.source)
    self.ckpt = checkpoints.manager(os.path.join(workdir, "checkpoints"),
                                    config.keep_checkpoints)
    self.writer = (metric_writers.AsyncWriter(metric_writers.SummaryWriter(workdir))
                   if self.is_chief else metric_writers.MultiWriter([]))
    self.last_saved_step: int | None = None

  def init_fn(self, rng: jax.Array) -> ClassifierState:
    return create_classifier_state(rng, self.network, self.tx, self.spec.image_shape)

  def initial_state(self) -> ClassifierState:
    rng = jax.random.PRNGKey(self.config.seed)
    latest = self.ckpt.latest_step()
    if latest is None:
      logging.info("initializing a new classifier run in %s", self.workdir)
      return jax.jit(self.init_fn, out_shardings=self.replicated)(rng)
    logging.info("resuming from %s/checkpoints/%d", self.workdir, latest)
    self.last_saved_step = latest
    target = checkpoints.abstract_state(self.init_fn, rng, self.replicated)
    return checkpoints.restore(self.ckpt, target, latest)

  def save_checkpoint(self, step: int, state: ClassifierState) -> None:
    if step == self.last_saved_step:
      return
    if not bool(all_finite(state)):
      raise NonFiniteLossError(f"parameters became non-finite by step {step}; not saving them. "
                               f"{last_checkpoint_text(self.last_saved_step)}")
    checkpoints.save(self.ckpt, state, step)
    self.last_saved_step = step

  def end_epoch(self, epoch: int, step: int, state: ClassifierState, log: MetricLog,
                started: float) -> None:
    """Logs the epoch's train metrics (the mean over its steps since the last epoch or resume)
    and the test split's accuracy and loss, then checkpoints."""
    means, _ = log.flush(step)
    test = self.test_accuracy(state.model.variables)
    scalars = {"train_accuracy": means.get("accuracy", float("nan")),
               "train_loss": means.get("loss", float("nan")),
               "test_accuracy": test["accuracy"], "test_loss": test["loss"], "epoch": epoch}
    logging.info("epoch %d/%d | train_accuracy=%.4f train_loss=%.4f | test_accuracy=%.4f "
                 "test_loss=%.4f | %.1f s", epoch, self.config.num_epochs,
                 scalars["train_accuracy"], scalars["train_loss"], test["accuracy"],
                 test["loss"], time.monotonic() - started)
    self.writer.write_scalars(step, scalars)
    self.save_checkpoint(step, state)

  def run(self) -> ClassifierState:
    config = self.config
    state = self.initial_state()
    start = int(jax.device_get(state.step))
    total, per_epoch = self.total_steps, self.steps_per_epoch
    if start >= total:
      logging.info("run in %s is at step %d >= %d (%d epochs): nothing to do", self.workdir,
                   start, total, config.num_epochs)
      return state
    if self.is_chief and start == 0:
      self.writer.write_hparams(dict(flatten_config(config.to_dict())))
    step_fn = jax.jit(make_classifier_step(self.network, self.tx),
                      in_shardings=(self.replicated, self.batch_sharding),
                      out_shardings=(self.replicated, self.replicated), donate_argnums=0)
    batches = data.BatchIterator(
        self.train_data, seed=config.seed, batch_size=config.batch_size, start_step=start,
        process_index=jax.process_index(), process_count=jax.process_count(),
        transform=self.transform)
    epoch_log = MetricLog(total_steps=total, last_step=start)
    rate_log = MetricLog(total_steps=total, last_step=start)
    epoch_started = time.monotonic()
    in_flight = MetricsInFlight([epoch_log, rate_log],
                                lambda: last_checkpoint_text(self.last_saved_step))

    try:
      with StopSignal() as stop:
        for step in range(start + 1, total + 1):
          _, local = next(batches)
          state, metrics = step_fn(
              state, to_global_batch(local, self.batch_sharding, config.batch_size))
          in_flight.push(step, metrics)
          in_flight.drain(step - 1)  # the previous step's metrics, while this step runs
          if step % config.log_every_steps == 0 or step % per_epoch == 0 or (
              stop.received is not None):
            in_flight.drain(step)
          if step % config.log_every_steps == 0:
            means, rate = rate_log.flush(step)
            logging.info("%s", rate_log.line(step, means, rate))
            self.writer.write_scalars(step, {"loss": means["loss"],
                                             "accuracy": means["accuracy"]})
          if step % per_epoch == 0:
            self.end_epoch(step // per_epoch, step, state, epoch_log, epoch_started)
            epoch_started = time.monotonic()
          if stop.received is not None and step != total:
            self.save_checkpoint(step, state)
            raise stop.interruption(step)
    finally:
      batches.close()
      self.ckpt.wait_until_finished()
      self.writer.flush()
    return state

  def close(self) -> None:
    self.ckpt.close()
    self.writer.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> ClassifierState:
  """Trains (or resumes) the classifier run `config` describes in `workdir`."""
  trainer = ClassifierTrainer(config, workdir)
  try:
    return trainer.run()
  finally:
    trainer.close()


def load_classifier_run(workdir: str, step: int | None = None
                        ) -> tuple[ml_collections.ConfigDict, Any, ClassifierState]:
  """The config, network and restored state of the classifier run in `workdir` (latest
  checkpoint by default). Needs no data: the data spec comes from ``run_info.json``."""
  config, spec = read_run_info(workdir)
  # The optimizer's schedule length does not change the state's structure.
  network, tx = build_classifier(config, spec, steps_per_epoch=1)
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise CheckpointError(f"{workdir!r} has no checkpoints directory")
  mngr = checkpoints.manager(directory, read_only=True)
  try:
    if step is not None and step not in mngr.all_steps():
      raise CheckpointError(f"no checkpoint for step {step} in {directory} (there are "
                            f"{sorted(mngr.all_steps())})")
    init = lambda rng: create_classifier_state(rng, network, tx, spec.image_shape)
    target = checkpoints.abstract_state(init, jax.random.PRNGKey(config.seed),
                                        NamedSharding(make_mesh(), P()))
    state = checkpoints.restore(mngr, target, step)
  finally:
    mngr.close()
  return config, network, state
