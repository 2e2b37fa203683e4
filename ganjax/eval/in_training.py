"""FID and Inception Score during training, and the best-FID checkpoint.

Every ``config.eval_every_steps`` steps (and at the last step) `Evaluation` draws
``config.eval_num_samples`` images from the sampling variables (the EMA generator when the run
keeps one) with fixed latents (seed ``config.seed``, so successive evaluations differ only by
the weights; `ganjax.eval.fid`'s ``--workdir`` command line with ``--seed`` equal to it and the
same batch size draws the same images), computes their FID against the cached statistics of
the reference split (``config.fid_reference``, default the training data set and split,
``config.fid_reference_num_images`` images, 0 = all) and their Inception Score, and logs
``fid``, ``inception_score`` and ``inception_score_std`` to the console and TensorBoard (the
protocol string once, as TensorBoard text).

When the FID is the best so far the state is also saved to ``WORKDIR/best_fid/<step>/`` (an
orbax checkpoint manager keeping one) and ``WORKDIR/best_fid.json`` records the step, FID, IS,
reference key and protocol; a resumed run reads it back, so "best" spans the whole run.

A population (`ganjax.population.trainer`) evaluates every member with one shared `Scorer`:
member i's images use latents of its own seed (``config.seed + i``, as its single run would),
its scalars are ``member_<i>/fid`` etc., and its best-FID checkpoint (member i's own state) and
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
import numpy as np

from ganjax import data
from ganjax.errors import ConfigError
from ganjax.eval import fid, inception
from ganjax.eval.inception_score import inception_score
from ganjax.eval.sampling import Sampler
from ganjax.gan.build import GAN
from ganjax.gan.state import GANState
from ganjax.runtime import checkpoints, files
from ganjax.runtime.signals import Interrupted

BEST_DIR = "best_fid"
BEST_FILE = "best_fid.json"
IS_SPLITS = 10


class Scorer:
  """FID and IS of a generator's samples against one reference split, computed on the mesh.

  The Inception weights, the sampler and the (lazily computed, cached) reference statistics are
  shared by every `Evaluation` built on it (the members of a population).
  """

  def __init__(self, config: ml_collections.ConfigDict, gan: GAN, mesh: Mesh,
               dataset: data.ImageDataset, interrupted: Callable[[], bool] = lambda: False):
    self.interrupted = interrupted
    self.num_samples = config.eval_num_samples
    if self.num_samples < IS_SPLITS:
      raise ConfigError(f"eval_num_samples={self.num_samples} is too few for FID / IS (at "
                        f"least {IS_SPLITS})")
    self.extractor = inception.load(config.inception_path or None, mesh=mesh)
    self.sampler = Sampler(gan, mesh, config.eval_batch_size)
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
    self.reference: fid.Statistics | None = None
    self.reference_key = ""
    self.protocol = ""

  def _poll(self) -> None:
    """Between batches: a stop signal interrupts the evaluation (the runtime then checkpoints
    and the resumed run evaluates the step again)."""
    if self.interrupted():
      logging.warning("evaluation interrupted by the stop signal")
      raise Interrupted

  def _reference(self) -> fid.Statistics:
    if self.reference is None:
      self.reference, self.reference_key = fid.reference_statistics(
          self.ref_dataset, self.ref_split, self.extractor, num_images=self.ref_num,
          image_size=self.image_size, data_dir=self.data_dir, loaded=self.loaded,
          between_batches=self._poll)
      self.loaded = None
      self.protocol = fid.protocol(self.reference_key, self.num_samples, self.extractor.digest,
                                   self.extractor.input_size, IS_SPLITS)
      logging.info("%s", self.protocol)
    return self.reference

  def __call__(self, sampling_variables: Any, seed: int) -> dict[str, float]:
    """``fid``, ``inception_score`` and ``inception_score_std`` of ``eval_num_samples`` images
    drawn with latents of `seed`."""
    reference = self._reference()
    batches = (x for x, _ in self.sampler.batches(sampling_variables, self.num_samples,
                                                  seed=seed))
    samples, logits = fid.evaluate_batches(batches, self.extractor, self._poll)
    finite = np.isfinite(samples.sigma).all() and np.isfinite(samples.mu).all()
    score = (fid.frechet_distance(samples.mu, samples.sigma, reference.mu, reference.sigma)
             if finite else float("nan"))
    is_mean, is_std = inception_score(logits, IS_SPLITS)
    return {"fid": score, "inception_score": is_mean, "inception_score_std": is_std}


class Evaluation:
  """The periodic FID / IS evaluation of one run (see the module docstring).

  `workdir` holds the best-FID checkpoint and record; `prefix` goes before the names of the
  TensorBoard scalars and `label` into the console line (a population member's
  ``member_<i>/`` and ``member <i>``); latents are drawn with `seed`.
  """

  def __init__(self, scorer: Scorer, workdir: str, writer: metric_writers.MetricWriter, *,
               seed: int, is_chief: bool = True, prefix: str = "", label: str = ""):
    self.scorer, self.workdir, self.writer, self.seed = scorer, workdir, writer, seed
    self.is_chief, self.prefix, self.label = is_chief, prefix, label
    self.ckpt = checkpoints.manager(os.path.join(workdir, BEST_DIR), max_to_keep=1)
    self.best = _read_best(os.path.join(workdir, BEST_FILE))
    self.protocol_written = False

  def __call__(self, step: int, state: GANState) -> dict[str, float]:
    """Evaluates `state`; saves it as the best-FID checkpoint when it is the best so far."""
    metrics = self.scorer(state.sampling_variables, self.seed)
    if self.is_chief and not self.protocol_written:
      self.writer.write_texts(0, {f"{self.prefix}fid_protocol": self.scorer.protocol})
      self.protocol_written = True
    label = f" | {self.label}" if self.label else ""
    logging.info("step %d%s | fid=%.4g inception_score=%.4g (+- %.2g) | %d samples vs %s",
                 step, label, metrics["fid"], metrics["inception_score"],
                 metrics["inception_score_std"], self.scorer.num_samples,
                 self.scorer.reference_key)
    self.writer.write_scalars(step, {self.prefix + k: v for k, v in metrics.items()})
    score = metrics["fid"]
    if math.isfinite(score) and (self.best is None or score < self.best["fid"]):
      self._save_best(step, state, metrics)
    return metrics

  def _save_best(self, step: int, state: GANState, metrics: dict[str, float]) -> None:
    checkpoints.save(self.ckpt, state, step)
    self.best = {"step": step, **metrics, "reference": self.scorer.reference_key,
                 "num_samples": self.scorer.num_samples, "protocol": self.scorer.protocol}
    if self.is_chief:
      files.write_json(os.path.join(self.workdir, BEST_FILE), self.best)
    logging.info("best FID so far%s (%.4g at step %d): saved %s/%s/%d",
                 f" of {self.label}" if self.label else "", metrics["fid"], step, self.workdir,
                 BEST_DIR, step)

  def close(self) -> None:
    self.ckpt.wait_until_finished()
    self.ckpt.close()


def _read_best(path: str) -> dict[str, Any] | None:
  return files.read_json(path) if os.path.exists(path) else None


def evaluates_fid(config: ml_collections.ConfigDict) -> bool:
  """Whether the run evaluates FID / IS: ``eval_every_steps`` > 0 and ``eval_fid`` on."""
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
