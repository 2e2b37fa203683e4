"""Sample-quality metrics during training (FID, IS, KID, PR, DC), and the best checkpoint.

Every ``config.eval_every_steps`` steps (and at the last step) `Evaluation` draws
``config.eval_num_samples`` images from the sampling variables (the EMA generator when the run
keeps one) with fixed latents (seed ``config.seed``, so successive evaluations differ only by
the weights; `ganjax.eval.fid`'s ``--workdir`` command line with ``--seed`` equal to it draws
the same images), computes the metrics named in ``config.eval_metrics`` (`ganjax.eval.metrics`:
``fid``, ``is``, ``kid``, ``pr``, ``dc``) against the cached statistics (and, for KID / PR / DC,
features) of the reference split (``config.fid_reference``, default the training data set and
split, ``config.fid_reference_num_images`` images, 0 = all), and logs their numbers (``fid``,
``inception_score``, ``inception_score_std``, ``kid``, ``kid_std``, ``precision``, ``recall``,
``density``, ``coverage``) to the console and TensorBoard (the protocol once, as TensorBoard
text).

When the number ``config.eval_best_metric`` (e.g. ``fid``, lower is better; ``recall``, higher
is better) is the best so far, the state is also saved to ``WORKDIR/best_<metric>/<step>/`` (an
orbax checkpoint manager keeping one) and ``WORKDIR/best_<metric>.json`` records the step, the
numbers, reference key and protocol; a resumed run reads it back, so "best" spans the whole run.

A population (`ganjax.population.trainer`) evaluates every member with one shared `Scorer`:
member i's images use latents of its own seed (``config.seed + i``, as its single run would),
its scalars are ``member_<i>/fid`` etc., and its best checkpoint (member i's own state) and
record are in ``WORKDIR/member_<i>/``.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

from absl import logging
from clu import metric_writers
import jax
from jax.sharding import Mesh
import ml_collections

from ganjax import data
from ganjax.errors import ConfigError
from ganjax.eval import fid, inception, metrics
from ganjax.eval.sampling import Sampler
from ganjax.gan.build import GAN
from ganjax.gan.state import GANState
from ganjax.runtime import checkpoints, files
from ganjax.runtime.progress import Progress
from ganjax.runtime.signals import Interrupted

IS_SPLITS = 10


def best_name(metric: str) -> str:
  """The best checkpoint's folder (and record, with ``.json``) of a metric: ``best_<metric>``."""
  return f"best_{metric}"


class Scorer:
  """The metrics of a generator's samples against one reference split, computed on the mesh.

  The Inception weights, the sampler and the (lazily computed, cached) reference statistics and
  features are shared by every `Evaluation` built on it (the members of a population).
  """

  def __init__(self, config: ml_collections.ConfigDict, gan: GAN, mesh: Mesh,
               dataset: data.ImageDataset, interrupted: Callable[[], bool] = lambda: False):
    self.interrupted = interrupted
    self.names = metrics.parse(config.eval_metrics)
    self.best_metric = config.eval_best_metric
    if self.best_metric:
      metrics.higher_is_better(self.best_metric)  # a one-line error for an unknown name
      if self.best_metric not in metrics.keys(self.names):
        raise ConfigError(f"eval_best_metric={self.best_metric!r} is not computed by "
                          f"eval_metrics={config.eval_metrics!r}")
    self.num_samples = config.eval_num_samples
    if self.num_samples < IS_SPLITS:
      raise ConfigError(f"eval_num_samples={self.num_samples} is too few for FID / IS (at "
                        f"least {IS_SPLITS})")
    self.extractor = inception.load(config.inception_path or None, mesh=mesh)
    self.sampler = Sampler(gan, mesh, config.eval_batch_size)
    # The nearest-neighbour passes run on this process's devices (mesh None): every process
    # holds all the features, and reads the results back to the host.
    self.options = metrics.Options(is_splits=IS_SPLITS, mesh=None, log=logging.info)
    reference = config.fid_reference
    if reference:
      self.ref_dataset, self.ref_split = fid.parse_reference(reference)
      self.loaded = None
    else:
      self.ref_dataset, self.ref_split = config.dataset, config.split
      self.loaded = dataset
    self.ref_num = config.fid_reference_num_images
    self.image_size = config.image_size
    self.data_dir = config.data_dir or None
    self.reference: fid.Reference | None = None
    self.reference_key = ""
    self.protocol = ""

  def _poll(self) -> None:
    """Between batches: a stop signal interrupts the evaluation (the runtime then checkpoints
    and the resumed run evaluates the step again)."""
    if self.interrupted():
      logging.warning("evaluation interrupted by the stop signal")
      raise Interrupted

  def _reference(self) -> fid.Reference:
    if self.reference is None:
      self.reference = fid.reference(
          self.ref_dataset, self.ref_split, self.extractor, num_images=self.ref_num,
          image_size=self.image_size, data_dir=self.data_dir, loaded=self.loaded,
          features=metrics.needs_features(self.names), between_batches=self._poll)
      self.reference_key = self.reference.key
      self.loaded = None
      self.protocol = metrics.protocol(self.names, self.reference_key, self.num_samples,
                                       self.extractor, self.options)
      logging.info("%s", self.protocol)
    return self.reference

  def __call__(self, sampling_variables: Any, seed: int) -> dict[str, float]:
    """The numbers of ``eval_metrics`` for ``eval_num_samples`` images drawn with latents of
    `seed`."""
    reference = self._reference()
    batches = (x for x, _ in self.sampler.batches(sampling_variables, self.num_samples,
                                                  seed=seed))
    fake = fid.extract(batches, self.extractor,
                       keep_features=metrics.needs_features(self.names),
                       between_batches=self._poll,
                       progress=Progress("evaluation samples", self.num_samples))
    return metrics.compute(self.names, fake, reference, self.options)


class Evaluation:
  """The periodic evaluation of one run (see the module docstring).

  `workdir` holds the best checkpoint and record; `prefix` goes before the names of the
  TensorBoard scalars and `label` into the console line (a population member's
  ``member_<i>/`` and ``member <i>``); latents are drawn with `seed`.
  """

  def __init__(self, scorer: Scorer, workdir: str, writer: metric_writers.MetricWriter, *,
               seed: int, is_chief: bool = True, prefix: str = "", label: str = ""):
    self.scorer, self.workdir, self.writer, self.seed = scorer, workdir, writer, seed
    self.is_chief, self.prefix, self.label = is_chief, prefix, label
    self.best_metric = scorer.best_metric
    self.ckpt = None
    self.best = None
    if self.best_metric:
      name = best_name(self.best_metric)
      self.ckpt = checkpoints.manager(os.path.join(workdir, name), max_to_keep=1)
      self.best = _read_best(os.path.join(workdir, f"{name}.json"))
    self.protocol_written = False

  def __call__(self, step: int, state: GANState) -> dict[str, float]:
    """Evaluates `state`; saves it as the best checkpoint when it is the best so far."""
    values = self.scorer(state.sampling_variables, self.seed)
    if self.is_chief and not self.protocol_written:
      self.writer.write_texts(0, {f"{self.prefix}fid_protocol": self.scorer.protocol})
      self.protocol_written = True
    label = f" | {self.label}" if self.label else ""
    logging.info("step %d%s | %s | %d samples vs %s", step, label, _format(values),
                 self.scorer.num_samples, self.scorer.reference_key)
    self.writer.write_scalars(step, {self.prefix + k: v for k, v in values.items()})
    if self.best_metric and self._is_better(values[self.best_metric]):
      self._save_best(step, state, values)
    return values

  def _is_better(self, score: float) -> bool:
    if not math.isfinite(score):
      return False
    if self.best is None or self.best_metric not in self.best:
      return True
    best = self.best[self.best_metric]
    return score > best if metrics.higher_is_better(self.best_metric) else score < best

  def _save_best(self, step: int, state: GANState, values: dict[str, float]) -> None:
    name = best_name(self.best_metric)
    checkpoints.save(self.ckpt, state, step)
    self.best = {"step": step, **values, "metric": self.best_metric,
                 "reference": self.scorer.reference_key,
                 "num_samples": self.scorer.num_samples, "protocol": self.scorer.protocol}
    if self.is_chief:
      files.write_json(os.path.join(self.workdir, f"{name}.json"), self.best)
    logging.info("best %s so far%s (%.4g at step %d): saved %s/%s/%d", self.best_metric,
                 f" of {self.label}" if self.label else "", values[self.best_metric], step,
                 self.workdir, name, step)

  def close(self) -> None:
    if self.ckpt is not None:
      self.ckpt.wait_until_finished()
      self.ckpt.close()


def _format(values: dict[str, float]) -> str:
  parts = []
  for key, value in values.items():
    if key.endswith("_std"):
      continue
    std = values.get(f"{key}_std")
    parts.append(f"{key}={value:.4g}" + (f" (+- {std:.2g})" if std is not None else ""))
  return " ".join(parts)


def _read_best(path: str) -> dict[str, Any] | None:
  return files.read_json(path) if os.path.exists(path) else None


def evaluates_fid(config: ml_collections.ConfigDict) -> bool:
  """Whether the run evaluates sample quality (``eval_metrics``): ``eval_every_steps`` > 0 and
  ``eval_fid`` on."""
  return bool(config.eval_every_steps and config.eval_fid)


def make_evaluation(config: ml_collections.ConfigDict, workdir: str, gan: GAN, mesh: Mesh,
                    dataset: data.ImageDataset, writer: metric_writers.MetricWriter,
                    interrupted: Callable[[], bool] = lambda: False) -> Evaluation | None:
  """The run's periodic evaluation, or None when ``eval_every_steps`` is 0 or ``eval_fid`` is
  off; `interrupted` is polled between batches (`Scorer`)."""
  if not evaluates_fid(config):
    return None
  return Evaluation(Scorer(config, gan, mesh, dataset, interrupted), workdir, writer,
                    seed=config.seed, is_chief=jax.process_index() == 0)
