"""Frechet Inception Distance (Heusel et al. 2017), exact to pytorch-fid; the FID command line.

``FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))`` between Gaussians fitted to the
2048-d pool features of two image sets (`ganjax.eval.inception`). `frechet_distance` is
pytorch-fid's ``calculate_frechet_distance`` step for step (scipy's ``sqrtm``; ``eps = 1e-6``
added to both diagonals when the product's square root is not finite; the imaginary part
dropped when it is below 1e-3 on the diagonal). Statistics are accumulated in float64 in one
streaming pass (`StatisticsAccumulator`), with ``sigma`` normalized by N - 1 as ``np.cov``.

Reference statistics of a data set split are computed once per (data set, split, image count,
image size, weights) and cached as ``.npz`` files with ``mu`` and ``sigma`` (what pytorch-fid
reads) in ``$GANJAX_FID_CACHE`` (default ``~/.cache/ganjax/fid_stats``). Every reported number
comes with its protocol string (`ganjax.eval.metrics.protocol`).

The command line (``python -m ganjax.eval.fid``, ``ganjax-fid``) is `ganjax.cli.fid`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Callable, Iterable, Iterator

from absl import logging
import numpy as np
from scipy import linalg

from ganjax import data
from ganjax.errors import ConfigError, DataError
from ganjax.eval import inception
from ganjax.runtime import files
from ganjax.runtime.progress import Progress

CACHE_ENV = "GANJAX_FID_CACHE"
PYTORCH_FID_EPS = 1e-6


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = PYTORCH_FID_EPS) -> float:
  """The Frechet distance of N(mu1, sigma1) and N(mu2, sigma2), as pytorch-fid computes it.

  ``d^2 = ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2))`` (Dowson &
  Landau 1982); when ``sqrtm(sigma1 sigma2)`` is not finite, ``eps * I`` is added to both
  covariances first (pytorch-fid ``calculate_frechet_distance``).
  """
  mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
  sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ConfigError(f"FID of statistics with different shapes: mu {mu1.shape} vs {mu2.shape},"
                      f" sigma {sigma1.shape} vs {sigma2.shape}")
  diff = mu1 - mu2
  covmean = linalg.sqrtm(sigma1.dot(sigma2))
  if not np.isfinite(covmean).all():
    logging.warning("FID: singular product; adding %s to the diagonal of the covariances", eps)
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ConfigError(f"FID: the square root of the covariance product has an imaginary "
                        f"component of {np.max(np.abs(covmean.imag)):.3g}")
    covmean = covmean.real
  return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@dataclasses.dataclass(frozen=True)
class Statistics:
  """Mean [D] and covariance [D, D] (float64) of features of `count` images."""

  mu: np.ndarray
  sigma: np.ndarray
  count: int

  def save(self, path: str, **metadata: str) -> None:
    """An ``.npz`` with ``mu``, ``sigma`` (read by pytorch-fid), ``count`` and `metadata`."""
    files.write_npz(path, mu=self.mu, sigma=self.sigma, count=np.int64(self.count),
                    **{k: np.asarray(v) for k, v in metadata.items()})

  @classmethod
  def load(cls, path: str) -> "Statistics":
    """Reads ``mu`` and ``sigma`` from an ``.npz`` (ganjax's or pytorch-fid's)."""
    try:
      with np.load(path) as f:
        count = int(f["count"]) if "count" in f.files else 0
        return cls(np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64), count)
    except (OSError, KeyError, ValueError) as e:
      raise DataError(f"cannot read FID statistics (mu, sigma) from {path!r}: {e}") from None


class StatisticsAccumulator:
  """Streaming mean and covariance in float64 (shifted sums; no features are kept).

  With shift c (the first batch's mean), ``mu = c + sum(x - c) / N`` and
  ``sigma = (sum (x - c)(x - c)^T - N (mu - c)(mu - c)^T) / (N - 1)``, which equals
  ``np.cov(features, rowvar=False)`` up to float64 rounding.
  """

  def __init__(self):
    self.count = 0
    self._shift: np.ndarray | None = None
    self._sum: np.ndarray | None = None
    self._outer: np.ndarray | None = None

  def add(self, features: np.ndarray) -> None:
    x = np.asarray(features, np.float64)
    if self._shift is None:
      self._shift = x.mean(axis=0)
      self._sum = np.zeros_like(self._shift)
      self._outer = np.zeros((x.shape[1], x.shape[1]))
    x = x - self._shift
    self._sum += x.sum(axis=0)
    self._outer += x.T @ x
    self.count += len(x)

  def result(self) -> Statistics:
    if self.count < 2:
      raise DataError(f"FID statistics need at least 2 images, got {self.count}")
    d = self._sum / self.count
    sigma = (self._outer - self.count * np.outer(d, d)) / (self.count - 1)
    return Statistics(self._shift + d, sigma, self.count)


@dataclasses.dataclass(frozen=True)
class Extracted:
  """What one Inception pass over a set of images gives: pool statistics, the unbiased logits
  [N, 1008] and, when kept, the pool features [N, 2048] (float32) themselves."""

  stats: Statistics
  logits: np.ndarray
  features: np.ndarray | None = None


def extract(batches: Iterable[np.ndarray], extractor: inception.InceptionExtractor, *,
            keep_features: bool = False,
            between_batches: Callable[[], None] | None = None,
            progress: Progress | None = None) -> Extracted:
  """One pass of the Inception network over uint8 image batches.

  Each batch goes through the network in chunks of its own batch size (``extractor.batch_size``
  images: the same computation as one call on the batch), so `progress` counts the images as
  they are done even when one batch takes minutes on a CPU. `between_batches` is called before
  each batch (a stop check may raise there).
  """
  acc, logits, features = StatisticsAccumulator(), [], []
  chunk = getattr(extractor, "batch_size", 0)  # the network's own batch: progress per chunk
  for images in batches:
    if between_batches is not None:
      between_batches()
    for start in range(0, len(images), chunk or max(len(images), 1)):
      part = images[start:start + chunk] if chunk else images
      out = extractor(part)
      acc.add(out["pool"])
      logits.append(out["logits_unbiased"])
      if keep_features:
        features.append(np.asarray(out["pool"], np.float32))
      if progress is not None:
        progress.update(len(part))
  if not logits:
    raise DataError("no images to evaluate")
  return Extracted(acc.result(), np.concatenate(logits),
                   np.concatenate(features) if keep_features else None)


def evaluate_batches(batches: Iterable[np.ndarray], extractor: inception.InceptionExtractor,
                     between_batches: Callable[[], None] | None = None
                     ) -> tuple[Statistics, np.ndarray]:
  """Pool statistics and the unbiased logits [N, 1008] of uint8 image batches (`extract`)."""
  out = extract(batches, extractor, between_batches=between_batches)
  return out.stats, out.logits


# -- protocol and reference statistics --------------------------------------------------------


def default_cache_dir() -> str:
  if os.environ.get(CACHE_ENV):
    return os.path.expanduser(os.environ[CACHE_ENV])
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(cache, "ganjax", "fid_stats")


def reference_key(dataset: str, split: str, num_images: int, image_size: int,
                  weights_digest: str) -> str:
  """``DATASET:SPLIT|n=COUNT|size=S|inception=DIGEST`` (COUNT ``all`` for the whole split)."""
  count = str(num_images) if num_images > 0 else "all"
  return (f"{dataset}:{split}|n={count}|size={image_size}|inception={weights_digest[:16]}")


def _cache_path(cache_dir: str, key: str) -> str:
  readable = re.sub(r"[^A-Za-z0-9._=-]+", "_", key.split("|inception=")[0])[-80:]
  return os.path.join(cache_dir, f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz")


def features_path(stats_path: str) -> str:
  """Where the pool features of the statistics file `stats_path` (``<key>.npz``) are cached."""
  return stats_path[:-len(".npz")] + "-features.npz"


@dataclasses.dataclass(frozen=True)
class Reference:
  """A reference set: its statistics, cache key and (when asked for) pool features [N, 2048]."""

  stats: Statistics
  key: str
  features: np.ndarray | None = None


def reference(dataset: str, split: str, extractor: inception.InceptionExtractor, *,
              num_images: int = 0, image_size: int = 32, data_dir: str | None = None,
              cache_dir: str | None = None, loaded: data.ImageDataset | None = None,
              batch_size: int = 500, features: bool = False,
              between_batches: Callable[[], None] | None = None) -> Reference:
  """The (cached) statistics, and with `features` the pool features, of the first
  `num_images` (0: all) images of a data set split.

  Both are cached per `reference_key`: the statistics as ``<key>.npz`` (``mu``, ``sigma``: what
  pytorch-fid reads), the features as ``<key>-features.npz``; a miss computes both in one
  Inception pass with progress lines. `loaded` is the data set already in memory (the
  trainer's), used instead of loading it on a miss; `between_batches` as in `extract`.
  """
  key = reference_key(dataset, split, num_images, image_size, extractor.digest)
  path = _cache_path(cache_dir or default_cache_dir(), key)
  feature_path = features_path(path)
  if os.path.exists(path) and (not features or os.path.exists(feature_path)):
    logging.info("FID reference %s from %s", key, path)
    return Reference(Statistics.load(path), key,
                     load_features(feature_path) if features else None)
  images = loaded if loaded is not None else data.load_dataset(
      dataset, split, image_size, data_dir=data_dir)
  if num_images > len(images):
    raise DataError(f"FID reference {dataset}:{split} has {len(images)} images, fewer than the "
                    f"{num_images} asked for")
  count = num_images or len(images)
  logging.info("computing reference statistics%s %s (%d images)",
               " and features" if features else "", key, count)
  batches = (x for x, _ in data.iterate_in_order(images, batch_size, num_images or None))
  out = extract(batches, extractor, keep_features=features, between_batches=between_batches,
                progress=Progress(f"reference {dataset}:{split}", count))
  out.stats.save(path, key=key)
  if features:
    files.write_npz(feature_path, features=out.features, key=np.asarray(key))
  return Reference(out.stats, key, out.features)


def load_features(path: str) -> np.ndarray:
  """The ``features`` array [N, 2048] of a features file, float32 (a one-line error if bad)."""
  try:
    with np.load(path) as f:
      return np.asarray(f["features"], np.float32)
  except (OSError, KeyError, ValueError) as e:
    raise DataError(f"cannot read reference features from {path!r}: {e}") from None


def reference_statistics(dataset: str, split: str, extractor: inception.InceptionExtractor,
                         **options) -> tuple[Statistics, str]:
  """The (cached) statistics of a reference split and their cache key (`reference`)."""
  ref = reference(dataset, split, extractor, **options)
  return ref.stats, ref.key


def parse_reference(ref: str) -> tuple[str, str]:
  """``DATASET:SPLIT`` -> (DATASET, SPLIT); the split is what follows the last colon."""
  dataset, sep, split = ref.rpartition(":")
  if not sep or not dataset or not split or dataset in ("folder", "synthetic"):
    raise ConfigError(f"--ref must be DATASET:SPLIT (e.g. cifar10:train, "
                      f"folder:/data/cifar10:train) or a statistics .npz, got {ref!r}")
  return dataset, split


# -- samples ----------------------------------------------------------------------------------


def _read_image(path: str) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert("RGB"))
  except OSError:
    raise DataError(f"unreadable image {path!r}") from None


def _npz_images(path: str) -> np.ndarray:
  if not os.path.exists(path):
    raise DataError(f"no such file {path!r}")
  with np.load(path) as f:
    key = "images" if "images" in f.files else (f.files[0] if len(f.files) == 1 else None)
    if key is None:
      raise DataError(f"{path!r} has no 'images' array (it has {f.files})")
    images = f[key]
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
    raise DataError(f"{path!r}: expected uint8 images [N, H, W, 3], got {images.dtype} "
                    f"{images.shape}")
  return images


def _image_files(path: str) -> list[str]:
  if not os.path.isdir(path):
    raise DataError(f"samples {path!r} are neither a folder nor an .npz file")
  found = sorted(os.path.join(d, f) for d, _, names in os.walk(path) for f in names
                 if f.lower().endswith(data.IMAGE_EXTENSIONS))
  if not found:
    raise DataError(f"folder {path!r} holds no images")
  return found


def count_samples(path: str) -> int:
  """How many images `read_samples` will read from `path`."""
  if path.endswith(".npz"):
    return len(_npz_images(path))
  return len(_image_files(path))


def read_samples(path: str, batch_size: int = 500) -> Iterator[np.ndarray]:
  """uint8 batches from a folder of images (sorted, recursive) or an ``.npz`` (``images``)."""
  if path.endswith(".npz"):
    images = _npz_images(path)
    for start in range(0, len(images), batch_size):
      yield images[start:start + batch_size]
    return
  found = _image_files(path)
  for start in range(0, len(found), batch_size):
    batch = [_read_image(f) for f in found[start:start + batch_size]]
    shapes = {x.shape for x in batch}
    if len(shapes) > 1:
      raise DataError(f"images in {path!r} differ in size ({sorted(shapes)[:2]})")
    yield np.stack(batch)


if __name__ == "__main__":
  from ganjax.cli import fid as fid_cli  # pylint: disable=g-import-not-at-top
  fid_cli.run()
