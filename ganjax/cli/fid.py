"""``ganjax-fid`` / ``python -m ganjax.eval.fid``: FID and IS of samples or of a run.

  python -m ganjax.eval.fid --ref cifar10:train --samples DIR_OR_NPZ
  python -m ganjax.eval.fid --workdir RUN [--num 10000]       # reference: the run's training data

``--ref`` is ``DATASET:SPLIT`` (any `ganjax.data` spec, e.g. ``folder:/data/cifar10:train``) or a
statistics ``.npz``. Prints FID, IS, the sample count, the reference and the protocol
(`ganjax.eval.fid`).
"""

from __future__ import annotations

from ganjax import cli  # first: sets up the process before TensorFlow and JAX load

from typing import Iterator  # pylint: disable=g-import-not-at-top,g-bad-import-order

from absl import flags
from absl import logging
import numpy as np

from ganjax import tasks
from ganjax.errors import ConfigError
from ganjax.eval import inception
from ganjax.eval.fid import (Statistics, evaluate_batches, frechet_distance, parse_reference,
                             protocol, read_samples, reference_statistics)
from ganjax.eval.inception_score import inception_score
from ganjax.eval.sampling import Sampler
from ganjax.runtime import mesh as mesh_lib

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
  flags.DEFINE_integer("splits", 10, "Inception Score splits.")


def _run_samples(workdir: str, num: int, step: int | None, seed: int, batch_size: int,
                 member: int | None = None) -> tuple[Iterator[np.ndarray], str, str, int]:
  """Sample batches from a run (or a population's `member`), and its (dataset, split, size)."""
  loaded = tasks.load_run(workdir, step, member)
  config, gan, state = loaded.config, loaded.gan, loaded.state
  if gan is None:
    raise ConfigError(f"{workdir!r} is a {loaded.kind} run; it has no generator to sample")
  sampler = Sampler(gan, mesh_lib.make_mesh(), batch_size)
  logging.info("sampling %d images from %s at step %d (%s weights)", num, workdir,
               int(state.step), "EMA" if state.ema_params is not None else "generator")
  batches = (x for x, _ in sampler.batches(state.sampling_variables, num, seed=seed))
  return batches, config.dataset, config.split, gan.data.image_shape[0]


def main(argv: list[str]) -> None:
  del argv
  if (FLAGS.samples is None) == (FLAGS.workdir is None):
    raise ConfigError("give exactly one of --samples PATH and --workdir RUN")
  ref = FLAGS.ref
  if FLAGS.workdir is not None:
    batches, run_dataset, run_split, size = _run_samples(FLAGS.workdir, FLAGS.num, FLAGS.step,
                                                         FLAGS.seed, FLAGS.batch_size,
                                                         FLAGS.member)
    ref = ref or f"{run_dataset}:{run_split}"
  else:
    if ref is None:
      raise ConfigError("--samples needs --ref DATASET:SPLIT or a statistics .npz")
    batches = read_samples(FLAGS.samples, FLAGS.batch_size)
    first = next(batches)
    size = first.shape[1]
    batches = _chain(first, batches)
  extractor = inception.load(FLAGS.inception)
  samples, logits = evaluate_batches(batches, extractor)
  if ref.endswith(".npz"):
    reference, ref_text = Statistics.load(ref), ref
  else:
    dataset, split = parse_reference(ref)
    reference, ref_text = reference_statistics(
        dataset, split, extractor, num_images=FLAGS.ref_num,
        image_size=FLAGS.ref_image_size or size, data_dir=FLAGS.data_dir or None)
  fid = frechet_distance(samples.mu, samples.sigma, reference.mu, reference.sigma)
  is_mean, is_std = inception_score(logits, FLAGS.splits)
  print(f"FID {fid:.4f}  IS {is_mean:.4f} +- {is_std:.4f}  samples {samples.count}  "
        f"reference {ref_text} ({reference.count or '?'} images)")
  text = protocol(ref_text, samples.count, extractor.digest, extractor.input_size, FLAGS.splits)
  print(f"protocol: {text}")


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
  yield first
  yield from rest


def run() -> None:
  """The console script."""
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
