"""``ganjax-generate`` / ``python -m ganjax.generate --workdir RUN --num N --out DIR_OR_NPZ``.

Writes N samples of a run's generator (the EMA weights when the run keeps them) from its latest
checkpoint (or ``--step``); of a population run, member ``--member i``'s:

* ``--out DIR``: PNG files ``DIR/000000.png ...``, which pytorch-fid and torch-fidelity read
  directly; with ``--per_class``, N images of every class in ``DIR/<class name>/``;
* ``--out FILE.npz``: ``images`` (uint8 [N, H, W, 3]) and, for conditional generators,
  ``labels`` (int32 [N]).
"""

from __future__ import annotations

from ganjax import cli  # first: sets up the process before TensorFlow and JAX load

import os  # pylint: disable=g-import-not-at-top,g-bad-import-order
import re
from typing import Iterator

from absl import flags
from absl import logging
import numpy as np
from PIL import Image

from ganjax import tasks
from ganjax.errors import ConfigError
from ganjax.eval.sampling import Sampler
from ganjax.runtime import files, mesh as mesh_lib

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "The run directory (with checkpoints/ and run_info.json).")
  flags.DEFINE_integer("num", None, "Number of samples (per class with --per_class).")
  flags.DEFINE_string("out", None, "Output folder for PNGs, or a file ending in .npz.")
  flags.DEFINE_bool("per_class", False, "N samples of every class (conditional generators).")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  flags.DEFINE_integer("seed", 0, "Seed of the latents.")
  flags.DEFINE_integer("batch_size", 256, "Sampling batch size.")
  flags.DEFINE_integer("member", None, "Member of a population run (ganjax.population).")
  flags.mark_flags_as_required(["workdir", "num", "out"])


def _safe_name(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "class"


def write_pngs(batches: Iterator[tuple[np.ndarray, np.ndarray | None]], folder: str) -> int:
  os.makedirs(folder, exist_ok=True)
  count = 0
  for images, _ in batches:
    for image in images:
      Image.fromarray(image).save(os.path.join(folder, f"{count:06d}.png"))
      count += 1
  return count


def export(workdir: str, num: int, out: str, *, per_class: bool = False, step: int | None = None,
           seed: int = 0, batch_size: int = 256, member: int | None = None) -> int:
  """Writes the samples (of population member `member`); returns how many were written."""
  if num < 1:
    raise ConfigError(f"--num must be at least 1, got {num}")
  loaded = tasks.load_run(workdir, step, member)
  gan, state = loaded.gan, loaded.state
  if gan is None:
    raise ConfigError(f"{workdir!r} is a {loaded.kind} run; it has no generator to sample")
  sampler = Sampler(gan, mesh_lib.make_mesh(), batch_size)
  variables = state.sampling_variables
  classes = list(enumerate(gan.data.class_names)) if per_class else [(None, None)]
  if per_class and not gan.generator.num_classes:
    raise ConfigError("--per_class needs a conditional generator; this run's is unconditional")
  logging.info("sampling %d images%s from %s at step %d (%s weights)", num,
               " per class" if per_class else "", workdir, int(state.step),
               "EMA" if state.ema_params is not None else "generator")
  if out.endswith(".npz"):
    images, labels = [], []
    for label, _ in classes:
      for x, y in sampler.batches(variables, num, seed=seed, label=label):
        images.append(x)
        labels.append(y)
    arrays = {"images": np.concatenate(images)}
    if gan.generator.num_classes:
      arrays["labels"] = np.concatenate(labels)
    files.write_npz(out, **arrays)
    return len(arrays["images"])
  total = 0
  for label, name in classes:
    folder = out if label is None else os.path.join(out, _safe_name(name))
    total += write_pngs(sampler.batches(variables, num, seed=seed, label=label), folder)
  return total


def main(argv: list[str]) -> None:
  del argv
  count = export(FLAGS.workdir, FLAGS.num, FLAGS.out, per_class=FLAGS.per_class,
                 step=FLAGS.step, seed=FLAGS.seed, batch_size=FLAGS.batch_size,
                 member=FLAGS.member)
  print(f"wrote {count} images to {FLAGS.out}")


def run() -> None:
  """The console script."""
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
