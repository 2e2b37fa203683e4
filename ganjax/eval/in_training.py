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
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from absl import logging
from clu import metric_writers
import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np

from ganjax import checkpoints, data
from ganjax.errors import ConfigError
from ganjax.eval import fid, inception
from ganjax.eval.inception_score import inception_score
from ganjax.experiment import GAN
from ganjax.sampling import Sampler
from ganjax.state import GANState

BEST_DIR = "best_fid"
BEST_FILE = "best_fid.json"
IS_SPLITS = 10


class Evaluation:
  """The periodic FID / IS evaluation of one run (see the module docstring)."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, gan: GAN, mesh: Mesh,
               dataset: data.ImageDataset, writer: metric_writers.MetricWriter,
               is_chief: bool = True):
    self.every = config.eval_every_steps
    self.num_samples = config.get("eval_num_samples", 10_000)
    if self.num_samples < IS_SPLITS:
      raise ConfigError(f"eval_num_samples={self.num_samples} is too few for FID / IS (at "
                        f"least {IS_SPLITS})")
    batch_size = config.get("eval_batch_size", 250)
    self.seed = config.seed
    self.extractor = inception.load(config.get("inception_path", "") or None, mesh=mesh)
    self.sampler = Sampler(gan, mesh, batch_size)
    reference = config.get("fid_reference", "")
    if reference:
      self.ref_dataset, self.ref_split = fid.parse_reference(reference)
      self.loaded = None
    else:
      self.ref_dataset, self.ref_split = config.dataset, config.split
      self.loaded = dataset
    self.ref_num = config.get("fid_reference_num_images", 0)
    self.image_size = config.image_size
    self.data_dir = config.data_dir or None
    self.writer, self.is_chief, self.workdir = writer, is_chief, workdir
    self.reference: fid.Statistics | None = None
    self.reference_key = ""
    self.ckpt = checkpoints.manager(os.path.join(workdir, BEST_DIR), max_to_keep=1)
    self.best = _read_best(os.path.join(workdir, BEST_FILE))

  def due(self, step: int, last: bool) -> bool:
    return step % self.every == 0 or last

  def _reference(self) -> fid.Statistics:
    if self.reference is None:
      self.reference, self.reference_key = fid.reference_statistics(
          self.ref_dataset, self.ref_split, self.extractor, num_images=self.ref_num,
          image_size=self.image_size, data_dir=self.data_dir, loaded=self.loaded)
      self.loaded = None
      self.protocol = fid.protocol(self.reference_key, self.num_samples, self.extractor.digest,
                                   self.extractor.input_size, IS_SPLITS)
      logging.info("%s", self.protocol)
      if self.is_chief:
        self.writer.write_texts(0, {"fid_protocol": self.protocol})
    return self.reference

  def __call__(self, step: int, state: GANState) -> dict[str, float]:
    """Evaluates `state`; saves it as the best-FID checkpoint when it is the best so far."""
    reference = self._reference()
    batches = (x for x, _ in self.sampler.batches(state.sampling_variables, self.num_samples,
                                                  seed=self.seed))
    samples, logits = fid.evaluate_batches(batches, self.extractor)
    finite = np.isfinite(samples.sigma).all() and np.isfinite(samples.mu).all()
    score = (fid.frechet_distance(samples.mu, samples.sigma, reference.mu, reference.sigma)
             if finite else float("nan"))
    is_mean, is_std = inception_score(logits, IS_SPLITS)
    metrics = {"fid": score, "inception_score": is_mean, "inception_score_std": is_std}
    logging.info("step %d | fid=%.4g inception_score=%.4g (+- %.2g) | %d samples vs %s", step,
                 score, is_mean, is_std, samples.count, self.reference_key)
    self.writer.write_scalars(step, metrics)
    if math.isfinite(score) and (self.best is None or score < self.best["fid"]):
      self._save_best(step, state, metrics)
    return metrics

  def _save_best(self, step: int, state: GANState, metrics: dict[str, float]) -> None:
    checkpoints.save(self.ckpt, state, step)
    self.best = {"step": step, **metrics, "reference": self.reference_key,
                 "num_samples": self.num_samples, "protocol": self.protocol}
    if self.is_chief:
      path = os.path.join(self.workdir, BEST_FILE)
      with open(path + ".tmp", "w") as f:
        json.dump(self.best, f, indent=2)
      os.replace(path + ".tmp", path)
    logging.info("best FID so far (%.4g at step %d): saved %s/%s/%d", metrics["fid"], step,
                 self.workdir, BEST_DIR, step)

  def close(self) -> None:
    self.ckpt.wait_until_finished()
    self.ckpt.close()


def _read_best(path: str) -> dict[str, Any] | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def make_evaluation(config: ml_collections.ConfigDict, workdir: str, gan: GAN, mesh: Mesh,
                    dataset: data.ImageDataset, writer: metric_writers.MetricWriter
                    ) -> Evaluation | None:
  """The run's periodic evaluation, or None when ``eval_every_steps`` is 0 (or absent) or
  ``eval_fid`` is off."""
  if not (config.get("eval_every_steps", 0) and config.get("eval_fid", True)):
    return None
  return Evaluation(config, workdir, gan, mesh, dataset, writer,
                    is_chief=jax.process_index() == 0)
