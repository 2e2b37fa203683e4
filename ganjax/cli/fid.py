"""``ganjax-fid`` / ``python -m ganjax.eval.fid`` (also ``python -m ganjax.eval.metrics``).

FID, IS, KID, precision / recall and density / coverage of samples or of a run, from one
Inception pass (`ganjax.eval.metrics`)::

  python -m ganjax.eval.fid --ref cifar10:train --samples DIR_OR_NPZ
  python -m ganjax.eval.fid --workdir RUN [--num 10000] [--json metrics.json]

``--ref`` is ``DATASET:SPLIT`` (any `ganjax.data` spec, e.g. ``folder:/data/cifar10:train``;
default with ``--workdir``: the run's training data) or a statistics ``.npz`` (FID only, or
every metric when it also holds ``features``). ``--metrics`` picks from fid, is, kid, pr, dc
(default all). Prints each number, the sample count, the reference and the protocol, with
progress lines during the long passes; ``--json PATH`` also writes them as JSON.
"""

from __future__ import annotations

from ganjax import cli  # first: sets up the process before TensorFlow and JAX load

import math  # pylint: disable=g-import-not-at-top,g-bad-import-order
import os
from typing import Any, Iterator

from absl import flags
from absl import logging
import numpy as np

from ganjax import tasks
from ganjax.errors import ConfigError
from ganjax.eval import fid, inception, metrics
from ganjax.eval.sampling import Sampler
from ganjax.runtime import files, mesh as mesh_lib
from ganjax.runtime.progress import Progress

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("ref", None, "Reference: DATASET:SPLIT or a statistics .npz (default "
                      "with --workdir: the run's training data set and split).")
  flags.DEFINE_string("samples", None, "A folder of images or an .npz of uint8 images.")
  flags.DEFINE_string("workdir", None, "Sample from this run's checkpoint instead.")
  flags.DEFINE_integer("num", 10_000, "Samples to draw with --workdir.")
  flags.DEFINE_integer("step", None, "Checkpoint step with --workdir (default: the latest).")
  flags.DEFINE_integer("seed", 0, "Seed of the latents with --workdir.")
  flags.DEFINE_integer("member", None, "Member of a population run with --workdir "
                       "(ganjax.population).")
  flags.DEFINE_integer("ref_num", 0, "Reference images (0: the whole split).")
  flags.DEFINE_integer("ref_image_size", 0, "Reference image size (0: the samples' size).")
  flags.DEFINE_string("data_dir", "", "tfds data_dir for the reference data set.")
  flags.DEFINE_string("inception", None, "FID Inception weights (.npz from "
                      "ganjax.eval.convert_inception; default: the cache).")
  flags.DEFINE_integer("batch_size", 250, "Batch size of sampling and image reading (the "
                       "Inception network runs 50 images per device at a time).")
  flags.DEFINE_string("metrics", ",".join(metrics.DEFAULT),
                      "Comma-separated metrics: fid, is, kid, pr, dc (or 'all').")
  flags.DEFINE_string("json", None, "Also write the numbers and their protocol to this file.")
  flags.DEFINE_integer("splits", 10, "Inception Score splits.")
  flags.DEFINE_integer("kid_subsets", 100, "KID subsets.")
  flags.DEFINE_integer("kid_subset_size", 1000, "KID subset size.")


def _run_samples(workdir: str, num: int, step: int | None, seed: int, batch_size: int,
                 member: int | None = None
                 ) -> tuple[Iterator[np.ndarray], str, str, int, dict[str, Any]]:
  """Sample batches from a run (or a population's `member`), its (dataset, split, size) and
  what identifies the samples (workdir, step, seed, member)."""
  loaded = tasks.load_run(workdir, step, member)
  config, gan, state = loaded.config, loaded.gan, loaded.state
  if gan is None:
    raise ConfigError(f"{workdir!r} is a {loaded.kind} run; it has no generator to sample")
  sampler = Sampler(gan, mesh_lib.make_mesh(), batch_size)
  logging.info("sampling %d images from %s at step %d (%s weights)", num, workdir,
               int(state.step), "EMA" if state.ema_params is not None else "generator")
  batches = (x for x, _ in sampler.batches(state.sampling_variables, num, seed=seed))
  source = {"workdir": workdir, "step": int(state.step), "seed": seed, "member": member,
            "weights": "ema" if state.ema_params is not None else "generator"}
  return batches, config.dataset, config.split, gan.data.image_shape[0], source


def _reference(ref: str, names: tuple[str, ...], extractor: inception.InceptionExtractor,
               image_size: int) -> fid.Reference:
  """The reference of `ref`: a statistics .npz (its features from a ``features`` array in it or
  the cache's ``<name>-features.npz`` beside it) or a split."""
  if not ref.endswith(".npz"):
    dataset, split = fid.parse_reference(ref)
    return fid.reference(dataset, split, extractor, num_images=FLAGS.ref_num,
                         image_size=FLAGS.ref_image_size or image_size,
                         data_dir=FLAGS.data_dir or None, features=metrics.needs_features(names))
  stats = fid.Statistics.load(ref)
  features = None
  with np.load(ref) as f:
    if "features" in f.files:
      features = np.asarray(f["features"], np.float32)
  beside = fid.features_path(ref)
  if features is None and metrics.needs_features(names) and os.path.exists(beside):
    features = fid.load_features(beside)
  if features is None and metrics.needs_features(names):
    wanted = [n for n in names if metrics.METRICS[n].needs_features]
    raise ConfigError(f"--ref {ref} holds statistics only; {', '.join(wanted)} need the "
                      f"reference's features: give DATASET:SPLIT or --metrics fid,is")
  return fid.Reference(stats, ref, features)


def _print(values: dict[str, float], count: int, ref: fid.Reference, text: str) -> None:
  for key, value in values.items():
    if key.endswith("_std"):
      continue
    std = values.get(f"{key}_std")
    spread = f" +- {std:.6g}" if std is not None else ""
    print(f"{key:<16} {value:.6g}{spread}")
  print(f"samples {count}  reference {ref.key} ({ref.stats.count or '?'} images)")
  print(f"protocol: {text}")


def _json_value(x: float) -> float | None:
  return x if math.isfinite(x) else None


def main(argv: list[str]) -> None:
  del argv
  if (FLAGS.samples is None) == (FLAGS.workdir is None):
    raise ConfigError("give exactly one of --samples PATH and --workdir RUN")
  names = metrics.parse(FLAGS.metrics)
  ref, source = FLAGS.ref, {}
  if FLAGS.workdir is not None:
    batches, run_dataset, run_split, size, source = _run_samples(
        FLAGS.workdir, FLAGS.num, FLAGS.step, FLAGS.seed, FLAGS.batch_size, FLAGS.member)
    ref, total = ref or f"{run_dataset}:{run_split}", FLAGS.num
  else:
    if ref is None:
      raise ConfigError("--samples needs --ref DATASET:SPLIT or a statistics .npz")
    total = fid.count_samples(FLAGS.samples)
    batches = fid.read_samples(FLAGS.samples, FLAGS.batch_size)
    first = next(batches)
    size = first.shape[1]
    batches = _chain(first, batches)
    source = {"samples": FLAGS.samples}
  extractor = inception.load(FLAGS.inception)
  reference = _reference(ref, names, extractor, size)  # config errors before the long pass
  what = "sampling and Inception features" if FLAGS.workdir else "Inception features"
  fake = fid.extract(batches, extractor, keep_features=metrics.needs_features(names),
                     progress=Progress(what, total))
  options = metrics.Options(is_splits=FLAGS.splits, kid_subsets=FLAGS.kid_subsets,
                            kid_subset_size=FLAGS.kid_subset_size, log=logging.info)
  values = metrics.compute(names, fake, reference, options)
  text = metrics.protocol(names, reference.key, fake.stats.count, extractor, options)
  _print(values, fake.stats.count, reference, text)
  if FLAGS.json:
    files.write_json(FLAGS.json, {
        "metrics": {k: _json_value(v) for k, v in values.items()},
        "num_samples": fake.stats.count, "reference": reference.key,
        "reference_images": reference.stats.count, "protocol": text.split("\n"),
        **source})
    logging.info("wrote %s", FLAGS.json)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
  yield first
  yield from rest


def run() -> None:
  """The console script."""
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
