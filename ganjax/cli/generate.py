"""``ganjax-generate`` / ``python -m ganjax.generate --workdir RUN --num N --out OUT``.

Samples a run's generator (the EMA weights when the run keeps them) from its latest checkpoint
(or ``--step``); of a population run, member ``--member i``'s.

Which samples. Image ``i`` of seed ``--seed`` is a function of the weights, the seed and ``i``
only (`ganjax.eval.sampling`: latent ``normal(fold_in(PRNGKey(seed), i))``, class ``i mod K``),
the same bytes whatever ``--batch_size`` and the number of devices or processes:

* ``--num N``: samples ``0 .. N-1``;
* ``--seeds 0-63`` or ``--seeds 3,7,10-12``: exactly those samples, in that order (each once):
  image ``i`` of ``--seeds`` is image ``i`` of a ``--num`` run with the same ``--seed``;
* ``--class K`` (conditional generators): class K for every image instead of ``i mod K``;
  ``--per_class``: the samples once for every class;
* ``--truncation T`` (T > 0): BigGAN's truncation trick (Brock et al. 2019), every latent
  coordinate drawn from the standard normal restricted to ``[-T, T]`` (the distribution of
  resampling it until it falls inside; `jax.random.truncated_normal`). Smaller T: less varied,
  more typical images. The images are then those of the truncated latents, not of ``--num``'s.
* ``--interpolate``: rows of ``--interpolate_steps`` images (both ends included) along the
  spherical interpolation (slerp) between the latents of two samples: row r between samples
  ``2r`` and ``2r + 1`` (``--num R`` rows), or between the r-th pair of ``--seeds``
  (``--seeds 3,7,10,12``: 3 to 7, 10 to 12). The end columns are exactly those samples' images.
  A conditional generator's row also goes across classes, from the first sample's class to the
  second's (class ``i mod K`` of sample i; the class embeddings mixed linearly along the row),
  or stays in class K along every row with ``--class K``.

Where (``--out``):

* a folder: PNG files named by sample index, ``OUT/000003.png`` (pytorch-fid and
  torch-fidelity read the folder directly); with ``--per_class``, ``OUT/<class name>/...``;
* ``FILE.npz``: ``images`` (uint8 [N, H, W, 3]), ``indices`` (int64 [N]), ``latents`` (float32
  [N, z_dim]) and for conditional generators ``labels`` (int32 [N]); with ``--interpolate``,
  ``images`` [R, S, H, W, 3], ``latents`` [R, S, z_dim], ``endpoints`` [R, 2], ``t`` [S] and
  ``labels`` [R, 2] (each row's start and end class);
* ``FILE.png``: one grid of the images (one row per class with ``--per_class``, one row per
  interpolation with ``--interpolate``).
"""

from __future__ import annotations

from ganjax import cli  # first: sets up the process before TensorFlow and JAX load

import dataclasses  # pylint: disable=g-import-not-at-top,g-bad-import-order
import math
import os
import re
from typing import Any, Iterator

from absl import flags
from absl import logging
import numpy as np
from PIL import Image

from ganjax import tasks
from ganjax.data import images as image_grid
from ganjax.errors import ConfigError
from ganjax.eval.sampling import MAX_INDEX, Sampler, check_truncation
from ganjax.runtime import files, mesh as mesh_lib
from ganjax.runtime.progress import counted

FLAGS = flags.FLAGS
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "The run directory (with checkpoints/ and run_info.json).")
  flags.DEFINE_integer("num", None, "Number of samples, 0..N-1 (per class with --per_class; "
                       "rows with --interpolate).")
  flags.DEFINE_string("seeds", None, "Sample indices instead of --num: '0-63' or '3,7,10-12' "
                      "(pairs of endpoints with --interpolate).")
  flags.DEFINE_string("out", None, "Output folder for PNGs, a file ending in .npz, or a grid "
                      "image ending in .png.")
  flags.DEFINE_bool("per_class", False, "The samples once for every class (conditional "
                    "generators).")
  flags.DEFINE_integer("class", None, "Class of every image (conditional generators).")
  flags.DEFINE_float("truncation", None, "Truncation trick: latent coordinates restricted to "
                     "[-T, T] (T > 0).")
  flags.DEFINE_bool("interpolate", False, "Rows of spherical interpolations between pairs of "
                    "samples' latents (and across their classes, for a conditional generator).")
  flags.DEFINE_integer("interpolate_steps", 8, "Images per interpolation row, both ends "
                       "included.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
  flags.DEFINE_integer("seed", 0, "Seed of the latents.")
  flags.DEFINE_integer("batch_size", 256, "Images handed out (and written) at a time; does not "
                       "change the images.")
  flags.DEFINE_integer("member", None, "Member of a population run (ganjax.population).")
  flags.mark_flags_as_required(["workdir", "out"])


def parse_seeds(text: str) -> np.ndarray:
  """``'0-63'`` or ``'3,7,10-12'`` -> the indices (int64), in order; one-line errors."""
  indices = []
  for part in text.replace(" ", "").split(","):
    match = _RANGE.match(part)
    if not match:
      raise ConfigError(f"--seeds: cannot read {part!r} in {text!r}; write e.g. '0-63' or "
                        "'3,7,10-12'")
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    if last < first:
      raise ConfigError(f"--seeds: the range {part!r} runs backwards")
    if last >= MAX_INDEX:
      raise ConfigError(f"--seeds: {last} is too large (sample indices are below 2**32)")
    indices.extend(range(first, last + 1))
  return np.asarray(indices, np.int64)


@dataclasses.dataclass(frozen=True)
class Request:
  """What to sample (the flags of the module docstring; `label` is ``--class``)."""

  num: int | None = None
  seeds: str | None = None
  per_class: bool = False
  label: int | None = None
  truncation: float | None = None
  interpolate: bool = False
  interpolate_steps: int = 8
  seed: int = 0

  def indices(self) -> np.ndarray:
    """The sample indices: of the images, or the interpolations' endpoints in pairs."""
    if (self.num is None) == (self.seeds is None):
      raise ConfigError("give exactly one of --num and --seeds")
    if self.num is not None:
      if self.num < 1:
        raise ConfigError(f"--num must be at least 1, got {self.num}")
      return np.arange(self.num * (2 if self.interpolate else 1), dtype=np.int64)
    return parse_seeds(self.seeds)

  def check(self, out: str) -> np.ndarray:
    """One-line errors for flags that do not go together; returns `indices`."""
    indices = self.indices()
    check_truncation(self.truncation)
    if self.label is not None and self.per_class:
      raise ConfigError("--class and --per_class exclude each other")
    if self.interpolate:
      _check_interpolation(self, indices, out)
    elif len(np.unique(indices)) != len(indices):
      raise ConfigError("--seeds lists an index more than once")
    return indices


def _check_interpolation(request: Request, indices: np.ndarray, out: str) -> None:
  if request.per_class:
    raise ConfigError("--interpolate and --per_class exclude each other; use --class")
  if len(indices) % 2:
    raise ConfigError(f"--interpolate needs pairs of --seeds (start, end), got {len(indices)} "
                      "indices")
  if request.interpolate_steps < 2:
    raise ConfigError(f"--interpolate_steps must be at least 2, got {request.interpolate_steps}")
  if not out.endswith((".png", ".npz")):
    raise ConfigError("--interpolate writes a grid: --out must end in .png or .npz")


def check_class(label: int | None, per_class: bool, num_classes: int) -> None:
  """One-line errors for ``--class`` / ``--per_class`` on this generator."""
  if (label is not None or per_class) and not num_classes:
    flag = "--class" if label is not None else "--per_class"
    raise ConfigError(f"{flag} needs a conditional generator; this run's is unconditional")
  if label is not None and not 0 <= label < num_classes:
    raise ConfigError(f"--class {label} is out of range: the generator has {num_classes} "
                      f"classes (0..{num_classes - 1})")


def _safe_name(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "class"


def write_pngs(batches: Iterator[tuple[np.ndarray, Any]], indices: np.ndarray,
               folder: str) -> int:
  """Writes the images of `batches` as ``folder/<index>.png``; returns how many."""
  os.makedirs(folder, exist_ok=True)
  count = 0
  for images, _ in batches:
    for image in images:
      Image.fromarray(image).save(os.path.join(folder, f"{indices[count]:06d}.png"))
      count += 1
  return count


def _classes(request: Request, gan: Any) -> list[tuple[int | None, str | None]]:
  """(label, folder name) per pass: every class with --per_class, else one pass."""
  if request.per_class:
    return list(enumerate(gan.data.class_names))
  return [(request.label, None)]


def _batch_size(batch: tuple[np.ndarray, Any]) -> int:
  return len(batch[0])


def _write_folder(sampler: Sampler, variables: Any, request: Request, indices: np.ndarray,
                  classes: list[tuple[int | None, str | None]], out: str) -> int:
  total = 0
  for label, name in classes:
    folder = out if name is None else os.path.join(out, _safe_name(name))
    batches = counted(sampler.batches(variables, indices=indices, seed=request.seed,
                                      label=label, truncation=request.truncation),
                      "sampling" + (f" class {name}" if name else ""), len(indices),
                      size=_batch_size)
    total += write_pngs(batches, indices, folder)
  return total


def _write_arrays(sampler: Sampler, variables: Any, request: Request, indices: np.ndarray,
                  classes: list[tuple[int | None, str | None]], out: str) -> int:
  """The .npz file or the grid .png of all the samples."""
  images, labels = [], []
  for label, name in classes:
    for x, y in counted(sampler.batches(variables, indices=indices, seed=request.seed,
                                        label=label, truncation=request.truncation),
                        "sampling" + (f" class {name}" if name else ""), len(indices),
                        size=_batch_size):
      images.append(x)
      labels.append(y)
  images = np.concatenate(images)
  if out.endswith(".png"):
    rows = len(classes) if request.per_class else max(1, round(math.sqrt(len(images))))
    files.write_png(out, image_grid.make_grid(images, rows=rows))
    return len(images)
  latents = sampler.latents(indices, seed=request.seed, truncation=request.truncation)
  arrays = {"images": images, "indices": np.tile(indices, len(classes)),
            "latents": np.tile(latents, (len(classes), 1))}
  if sampler.num_classes:
    arrays["labels"] = np.concatenate(labels)
  files.write_npz(out, **arrays)
  return len(images)


def _write_interpolation(sampler: Sampler, variables: Any, request: Request,
                         indices: np.ndarray, out: str) -> int:
  endpoints = indices.reshape(-1, 2)
  images, latents, labels = sampler.interpolate(
      variables, endpoints, request.interpolate_steps, seed=request.seed, label=request.label,
      truncation=request.truncation)
  rows, steps = images.shape[:2]
  if out.endswith(".png"):
    files.write_png(out, image_grid.make_grid(images.reshape((-1,) + images.shape[2:]), rows))
    return rows * steps
  arrays = {"images": images, "latents": latents, "endpoints": endpoints,
            "t": np.linspace(0.0, 1.0, steps)}
  if labels is not None:
    arrays["labels"] = labels
  files.write_npz(out, **arrays)
  return rows * steps


def export(workdir: str, out: str, request: Request, *, step: int | None = None,
           batch_size: int = 256, member: int | None = None) -> int:
  """Writes the samples `request` asks for (of population member `member`) to `out`; returns
  how many images were written."""
  indices = request.check(out)
  loaded = tasks.load_run(workdir, step, member)
  gan, state = loaded.gan, loaded.state
  if gan is None:
    raise ConfigError(f"{workdir!r} is a {loaded.kind} run; it has no generator to sample")
  check_class(request.label, request.per_class, gan.generator.num_classes)
  sampler = Sampler(gan, mesh_lib.make_mesh(), batch_size)
  variables = state.sampling_variables
  logging.info("sampling %d %s%s from %s at step %d (%s weights)", len(indices),
               "interpolation endpoints" if request.interpolate else "images",
               " per class" if request.per_class else "", workdir, int(state.step),
               "EMA" if state.ema_params is not None else "generator")
  if request.interpolate:
    return _write_interpolation(sampler, variables, request, indices, out)
  classes = _classes(request, gan)
  if out.endswith((".npz", ".png")):
    return _write_arrays(sampler, variables, request, indices, classes, out)
  return _write_folder(sampler, variables, request, indices, classes, out)


def request_from_flags() -> Request:
  return Request(num=FLAGS.num, seeds=FLAGS.seeds, per_class=FLAGS.per_class,
                 label=FLAGS["class"].value, truncation=FLAGS.truncation,
                 interpolate=FLAGS.interpolate, interpolate_steps=FLAGS.interpolate_steps,
                 seed=FLAGS.seed)


def main(argv: list[str]) -> None:
  del argv
  count = export(FLAGS.workdir, FLAGS.out, request_from_flags(), step=FLAGS.step,
                 batch_size=FLAGS.batch_size, member=FLAGS.member)
  print(f"wrote {count} images to {FLAGS.out}")


def run() -> None:
  """The console script."""
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
