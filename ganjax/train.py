"""The training loop: the imperative shell around the pure `train_step`.

`train_and_evaluate(config, workdir)` builds everything from the config, restores the latest
checkpoint in ``workdir`` (or initializes), and runs `train_step` under `jax.jit` over a mesh
of all devices (batch split on the ``'data'`` axis, state replicated and donated) until
``config.num_train_steps``, with periodic console lines and TensorBoard scalars, sample grids,
FID / IS (`ganjax.eval.in_training`) and orbax checkpoints. Running it again on the same
workdir resumes.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import Any, Callable

from absl import logging
from clu import metric_writers
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np

from ganjax import checkpoints, class_accuracy, data, images
from ganjax.errors import ConfigError, NonFiniteLossError, TrainingInterrupted
from ganjax.eval import in_training
from ganjax.experiment import GAN, DataSpec, build_gan, write_run_info
from ganjax.state import GANState

Metrics = dict[str, float]
Action = Callable[[int, GANState], None]


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over all devices (of every process), axis ``'data'``."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("data",))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size <= 0 or batch_size % n:
    raise ConfigError(f"batch_size={batch_size} is not divisible by the {n} devices; use a "
                     f"multiple of {n}")
  if batch_size % jax.process_count():
    raise ConfigError(f"batch_size={batch_size} is not divisible by the {jax.process_count()} "
                     "processes")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of a training batch [n_critic, B, ...]: B split over ``'data'``."""
  return NamedSharding(mesh, P(None, "data"))


def to_global_batch(local: dict[str, np.ndarray], sharding: NamedSharding,
                    batch_size: int) -> dict[str, jax.Array]:
  """Assembles every process's slice of a batch into global arrays on the mesh."""

  def make(x):
    global_shape = (x.shape[0], batch_size) + x.shape[2:]
    return jax.make_array_from_process_local_data(sharding, x, global_shape)

  return jax.tree.map(make, local)


def last_checkpoint_text(step: int | None) -> str:
  """What a failing run still has on disk: the end of its non-finite-loss message."""
  if step is None:
    return "no checkpoint was written"
  return f"the last checkpoint (step {step}) is intact"


@jax.jit
def all_finite(tree: Any) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def fixed_sample_inputs(seed: int, gan: GAN, columns: int = 8
                        ) -> tuple[jax.Array, jax.Array | None, int]:
  """The fixed latents (and labels) of the sample grids, and the grid's number of rows.

  Unconditional: an 8x8 grid. Conditional: one row per class, `columns` samples each.
  """
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3)
  if gan.generator.num_classes:
    rows = gan.generator.num_classes
    labels = jnp.repeat(jnp.arange(rows, dtype=jnp.int32), columns)
  else:
    rows, labels = 8, None
  z = jax.random.normal(key, (rows * columns, gan.generator.z_dim), jnp.float32)
  return z, labels, rows


@dataclasses.dataclass
class MetricLog:
  """Accumulates per-step metrics between console/TensorBoard lines."""

  total_steps: int
  sums: dict[str, float] = dataclasses.field(default_factory=dict)
  count: int = 0
  last_time: float = dataclasses.field(default_factory=time.monotonic)
  last_step: int = 0

  def add(self, metrics: Metrics) -> None:
    for k, v in metrics.items():
      self.sums[k] = self.sums.get(k, 0.0) + v
    self.count += 1

  def restart_clock(self, step: int) -> None:
    self.last_time, self.last_step = time.monotonic(), step

  def flush(self, step: int) -> tuple[Metrics, float]:
    now = time.monotonic()
    # Steps per second since the clock last started; NaN when no step has been timed (the
    # first step after a start, which includes compilation, is timed separately).
    steps = step - self.last_step
    rate = steps / max(now - self.last_time, 1e-9) if steps > 0 else float("nan")
    means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
    self.sums, self.count, self.last_time, self.last_step = {}, 0, now, step
    return means, rate

  def line(self, step: int, means: Metrics, rate: float) -> str:
    keys = sorted(means, key=lambda k: (not k.endswith("loss"), k))
    values = " ".join(f"{k}={means[k]:.4g}" for k in keys)
    if not rate > 0:  # NaN: nothing timed yet
      return f"step {step}/{self.total_steps} | {values} | ? steps/s | ETA ?"
    eta = (self.total_steps - step) / rate
    eta_text = (f"{eta / 86400:.1f}d" if eta >= 86400 else
                time.strftime("%H:%M:%S", time.gmtime(eta)))
    return f"step {step}/{self.total_steps} | {values} | {rate:.3g} steps/s | ETA {eta_text}"


def host_metrics(metrics: dict[str, jax.Array]) -> Metrics:
  """A step's metrics as Python floats, by name."""
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


class MetricsInFlight:
  """Device metrics of steps whose values the host has not read yet.

  A loop `push`es each step's metrics right after dispatching it and `drain`s up to the previous
  step, so one step stays in flight while the host reads the last one. `drain(upto)` reads the
  pending steps <= `upto` in order with `to_values` (default `host_metrics`), raises `NonFiniteLossError` at the first
  non-finite metric (naming it, its step and `checkpoint_text()`), and adds the values to each
  of `logs`.
  """

  def __init__(self, logs: list[MetricLog], checkpoint_text: Callable[[], str],
               to_values: Callable[[dict[str, jax.Array]], Metrics] = host_metrics):
    self.to_values, self.logs, self.checkpoint_text = to_values, logs, checkpoint_text
    self.pending: list[tuple[int, dict[str, jax.Array]]] = []

  def push(self, step: int, metrics: dict[str, jax.Array]) -> None:
    self.pending.append((step, metrics))

  def drain(self, upto: int) -> None:
    while self.pending and self.pending[0][0] <= upto:
      step, metrics = self.pending.pop(0)
      values = self.to_values(metrics)
      bad = sorted(k for k, v in values.items() if not np.isfinite(v))
      if bad:
        raise NonFiniteLossError(f"non-finite {', '.join(bad)} at step {step}; "
                                 f"{self.checkpoint_text()}")
      for log in self.logs:
        log.add(values)


class StopSignal:
  """Turns SIGTERM / SIGINT into a flag the loop checks between steps (a second SIGINT kills)."""

  def __init__(self):
    self.received: int | None = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: leave signals alone
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    if self.received is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.received = signum
    logging.warning("received signal %d: saving a checkpoint after this step", signum)

  def interruption(self, step: int) -> TrainingInterrupted:
    """The error a loop raises after saving the checkpoint of `step` on a received signal."""
    return TrainingInterrupted(f"stopped by signal {self.received} at step {step}; checkpoint "
                               "saved, run the same command to resume")

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


class Trainer:
  """One training run in a workdir. `run()` trains to ``config.num_train_steps``."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config = config
    self.workdir = workdir
    self.is_chief = jax.process_index() == 0
    self.mesh = make_mesh()
    check_batch_size(config.batch_size, self.mesh)
    self.dataset = data.load_dataset(config.dataset, config.split, config.image_size,
                                     data_dir=config.data_dir or None)
    spec = DataSpec(self.dataset.image_shape, self.dataset.class_names)
    self.gan = build_gan(config, spec, NamedSharding(self.mesh, P("data")))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = batch_sharding(self.mesh)
    os.makedirs(workdir, exist_ok=True)
    if self.is_chief:
      write_run_info(workdir, config, spec, self.dataset.source)
    self.ckpt = checkpoints.manager(os.path.join(workdir, "checkpoints"),
                                    config.keep_checkpoints)
    self.writer = (metric_writers.AsyncWriter(metric_writers.SummaryWriter(workdir))
                   if self.is_chief else metric_writers.MultiWriter([]))
    self.sample = jax.jit(self.gan.sample_fn(), out_shardings=self.replicated)
    self.sample_z, self.sample_labels, self.sample_rows = fixed_sample_inputs(config.seed,
                                                                              self.gan)
    self.last_saved_step: int | None = None
    self.evaluation: Any = None  # the FID / IS evaluation (`evaluate`), built by `run`
    self.test_accuracy = class_accuracy.gan_test_accuracy(config, self.gan.discriminator,
                                                          self.mesh)

  # -- state ------------------------------------------------------------------------------

  def state_step(self, state: GANState) -> int:
    """The number of completed steps of `state`."""
    return int(jax.device_get(state.step))

  def init_fn(self) -> tuple[Callable[[jax.Array], GANState], jax.Array]:
    """The pure initializer of the state and the key it takes."""
    return self.gan.init, jax.random.PRNGKey(self.config.seed)

  def initial_state(self) -> GANState:
    """The latest checkpoint's state, or a freshly initialized one."""
    init, rng = self.init_fn()
    latest = self.ckpt.latest_step()
    if latest is None:
      logging.info("initializing a new run in %s", self.workdir)
      return jax.jit(init, out_shardings=self.replicated)(rng)
    logging.info("resuming from %s/checkpoints/%d", self.workdir, latest)
    target = checkpoints.abstract_state(init, rng, self.replicated)
    self.last_saved_step = latest
    return checkpoints.restore(self.ckpt, target, latest)

  # -- periodic actions -------------------------------------------------------------------

  def _last_checkpoint_text(self) -> str:
    return last_checkpoint_text(self.last_saved_step)

  def save_checkpoint(self, step: int, state: GANState) -> None:
    if step == self.last_saved_step:
      return
    if not bool(all_finite(state)):
      raise NonFiniteLossError(f"parameters became non-finite by step {step}; not saving them. "
                               f"{self._last_checkpoint_text()}")
    checkpoints.save(self.ckpt, state, step)
    self.last_saved_step = step

  def write_samples(self, step: int, state: GANState) -> None:
    samples = self.sample(state.sampling_variables, self.sample_z, self.sample_labels)
    if not self.is_chief:
      return
    grid = images.make_grid(np.asarray(jax.device_get(samples)), rows=self.sample_rows)
    images.save_png(grid, os.path.join(self.workdir, "samples", f"step_{step}.png"))
    self.writer.write_images(step, {"samples": grid[None]})

  def make_evaluation(self) -> Any:
    """The FID / IS evaluation of the run (`ganjax.eval.in_training`), or None."""
    return in_training.make_evaluation(self.config, self.workdir, self.gan, self.mesh,
                                       self.dataset, self.writer)

  def evaluates(self) -> bool:
    return self.evaluation is not None or self.test_accuracy is not None

  def evaluate(self, step: int, state: GANState) -> None:
    """FID / IS (with the best-FID checkpoint) and the discriminator's test accuracy."""
    if self.evaluation is not None:
      self.evaluation(step, state)
    if self.test_accuracy is not None:
      class_accuracy.log_gan_test_accuracy(self.test_accuracy, step, state, self.writer)

  # -- loop -------------------------------------------------------------------------------

  def batch_iterator(self, start: int) -> data.BatchIterator:
    """This process's slices of the batches of steps start, start + 1, ..."""
    config = self.config
    return data.BatchIterator(
        self.dataset, seed=config.seed, batch_size=config.batch_size,
        n_critic=config.n_critic, start_step=start, process_index=jax.process_index(),
        process_count=jax.process_count())

  def global_batch(self, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return to_global_batch(local, self.batch_sharding, self.config.batch_size)

  def metric_values(self, metrics: dict[str, jax.Array]) -> Metrics:
    """A step's metrics as Python floats, by name (a population trainer splits members)."""
    return host_metrics(metrics)

  def write_metrics(self, step: int, log: "MetricLog", means: Metrics, rate: float) -> None:
    """The console line and TensorBoard scalars of the steps since the last one."""
    logging.info("%s", log.line(step, means, rate))
    self.writer.write_scalars(step, means if np.isnan(rate) else
                              {**means, "steps_per_sec": rate})

  def _compiled_step(self) -> Callable[..., Any]:
    return jax.jit(self.gan.train_step(),
                   in_shardings=(self.replicated, self.batch_sharding),
                   out_shardings=(self.replicated, self.replicated),
                   donate_argnums=0)

  def run(self) -> GANState:
    config = self.config
    if self.evaluation is None:
      self.evaluation = self.make_evaluation()  # first: its config errors come before any work
    state = self.initial_state()
    start = self.state_step(state)
    total = config.num_train_steps
    if start >= total:
      logging.info("run in %s is at step %d >= num_train_steps=%d: nothing to do",
                   self.workdir, start, total)
      return state
    if self.is_chief and start == 0:
      self.writer.write_hparams(dict(flatten_config(config.to_dict())))
    train_step = self._compiled_step()
    batches = self.batch_iterator(start)
    log = MetricLog(total_steps=total, last_step=start)
    in_flight = MetricsInFlight([log], self._last_checkpoint_text, self.metric_values)

    try:
      with StopSignal() as stop:
        for step in range(start + 1, total + 1):
          _, local = next(batches)
          state, metrics = train_step(state, self.global_batch(local))
          in_flight.push(step, metrics)
          in_flight.drain(step - 1)  # the previous step's metrics: one step stays in flight
          if step == start + 1:
            in_flight.drain(step)
            logging.info("step %d took %.1f s (including compilation)", step,
                         time.monotonic() - log.last_time)
            log.restart_clock(step)
          last = step == total
          if step % config.log_every_steps == 0 or last:
            in_flight.drain(step)
            means, rate = log.flush(step)
            self.write_metrics(step, log, means, rate)
          if step % config.sample_every_steps == 0 or last:
            self.write_samples(step, state)
          if self.evaluates() and (step % config.eval_every_steps == 0 or last):
            in_flight.drain(step)
            self.evaluate(step, state)
          if step % config.checkpoint_every_steps == 0 or last:
            in_flight.drain(step)
            self.save_checkpoint(step, state)
          if stop.received is not None and not last:
            in_flight.drain(step)
            self.save_checkpoint(step, state)
            raise stop.interruption(step)
    finally:
      batches.close()
      self.ckpt.wait_until_finished()
      self.writer.flush()
    return state

  def close(self) -> None:
    self.ckpt.close()
    if self.evaluation is not None:
      self.evaluation.close()
    self.writer.close()


def flatten_config(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
  out = []
  for k, v in d.items():
    if isinstance(v, dict):
      out.extend(flatten_config(v, f"{prefix}{k}."))
    else:
      out.append((f"{prefix}{k}", v))
  return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> GANState:
  """Trains (or resumes) the run `config` describes in `workdir`; returns the final state.

  A population config (``population.size > 1``) trains all members; the state is stacked.
  """
  # Imported here: population_train extends Trainer, so it imports this module.
  from ganjax import population_train  # pylint: disable=g-import-not-at-top
  trainer = population_train.trainer_for(config, workdir)
  try:
    return trainer.run()
  finally:
    trainer.close()
