"""Class accuracy of a discriminator's auxiliary classifier on a whole data split.

`SplitAccuracy` holds one split in host memory and a jitted `ganjax.classifier.step.make_eval_step`
over a device mesh (batch split on ``'data'``, variables replicated); calling it with the
network's variables returns ``{'accuracy', 'loss'}`` over every example of the split (the last
batch padded and masked; with several processes each feeds its slice of every batch). The
classifier trainer uses it every epoch; the GAN trainer uses `gan_test_accuracy` every
``eval_every_steps`` for auxiliary-classifier runs (``aux_classifier_weight > 0``), logging
``d_test_class_acc``.
"""

from __future__ import annotations

from typing import Any

from absl import logging
import jax
from jax.sharding import Mesh
import flax.linen as nn
import ml_collections
import numpy as np

from ganjax import data
from ganjax.classifier.step import make_eval_step
from ganjax.runtime import mesh as mesh_lib


class SplitAccuracy:
  """Accuracy and mean cross-entropy of a classifier on all of `dataset`."""

  def __init__(self, discriminator: nn.Module, dataset: data.ImageDataset, mesh: Mesh,
               batch_size: int = 500, limit: int | None = None):
    self.batch_size = mesh_lib.round_to_devices(batch_size, mesh)
    self.dataset = dataset
    self.limit = limit
    split, replicated = mesh_lib.data_sharding(mesh), mesh_lib.replicated(mesh)
    self._split = split
    self._eval = jax.jit(make_eval_step(discriminator),
                         in_shardings=(replicated, split, split, split),
                         out_shardings=replicated)

  def _global(self, x: np.ndarray) -> jax.Array:
    """This process's slice of a global batch, assembled into one array on the mesh."""
    return jax.make_array_from_process_local_data(self._split, mesh_lib.process_slice(x),
                                                  x.shape)

  def __call__(self, variables: Any) -> dict[str, float]:
    totals = {"correct": 0.0, "loss_sum": 0.0, "count": 0.0}
    for images, labels in data.iterate_in_order(self.dataset, self.batch_size, self.limit):
      k = len(images)
      pad = self.batch_size - k
      images = np.pad(data.to_float(images), ((0, pad), (0, 0), (0, 0), (0, 0)))
      labels = np.pad(labels, (0, pad))
      mask = np.arange(self.batch_size) < k
      out = self._eval(variables, *(self._global(x) for x in (images, labels, mask)))
      for key, value in jax.device_get(out).items():
        totals[key] += float(value)
    count = max(totals["count"], 1.0)
    return {"accuracy": totals["correct"] / count, "loss": totals["loss_sum"] / count}


def gan_test_accuracy(config: ml_collections.ConfigDict, discriminator: nn.Module,
                      mesh: Mesh) -> SplitAccuracy | None:
  """The test-split accuracy the GAN trainer logs, or None when the run has no auxiliary
  classifier or ``eval_every_steps`` is 0."""
  if not (config.aux_classifier_weight > 0 and config.eval_every_steps):
    return None
  test = data.load_dataset(config.dataset, config.test_split, config.image_size,
                           data_dir=config.data_dir or None)
  return SplitAccuracy(discriminator, test, mesh, config.eval_batch_size,
                       limit=config.eval_class_num_images or None)


def log_gan_test_accuracy(evaluator: SplitAccuracy, step: int, state: Any,
                          writer: Any, prefix: str = "", label: str = "") -> float:
  """Evaluates a GAN state's discriminator on the test split; logs ``d_test_class_acc`` to the
  console and `writer` (a clu metric writer) at `step`.

  `prefix` goes before the scalar names and `label` into the console line (a population
  member's ``member_<i>/`` and ``member <i>``).
  """
  result = evaluator(state.discriminator.variables)
  logging.info("step %d%s | d_test_class_acc=%.4f d_test_class_loss=%.4f", step,
               f" | {label}" if label else "", result["accuracy"], result["loss"])
  writer.write_scalars(step, {f"{prefix}d_test_class_acc": result["accuracy"],
                              f"{prefix}d_test_class_loss": result["loss"]})
  return result["accuracy"]
