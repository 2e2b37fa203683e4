"""Every sample-quality metric from one Inception pass, each with its published protocol.

One pass of the FID Inception network (`ganjax.eval.inception`) over the generated images gives
their pool features [N, 2048] and unbiased logits [N, 1008]; the reference set's statistics and
features are cached (`ganjax.eval.fid.reference`). From them, the metrics of `METRICS`:

===========  ==============================  ================================================
name         numbers                         definition and the protocol it matches
===========  ==============================  ================================================
``fid``      ``fid``                         Frechet distance of Gaussians fitted to the pool
                                             features (Heusel et al. 2017), exact to
                                             pytorch-fid (`ganjax.eval.fid`). Lower is better.
``is``       ``inception_score``,            exp E KL(p(y|x) || p(y)) over 10 splits
             ``inception_score_std``         (Salimans et al. 2016; improved-gan's code, as
                                             torch-fidelity's ``isc``). Higher is better.
``kid``      ``kid``, ``kid_std``            unbiased MMD^2 with the kernel (x.y / 2048 + 1)^3,
                                             mean and std over 100 subsets of 1,000 (Binkowski
                                             et al. 2018), exactly torch-fidelity's ``kid``
                                             with the generated images as ``input1`` and its
                                             seed 2020. Lower is better.
``pr``       ``precision``, ``recall``       improved precision and recall with k = 3
                                             (Kynkaanniemi et al. 2019), stylegan2-ada's
                                             ``pr50k3`` rule (``<=``), distances in float64.
                                             Higher is better.
``dc``       ``density``, ``coverage``       density and coverage with k = 5 (Naeem et al.
                                             2020), exactly ``prdc.compute_prdc``. Higher is
                                             better (density can exceed 1).
===========  ==============================  ================================================

KID, precision / recall and density / coverage need the reference's pool features (cached as
``<reference>-features.npz`` beside the statistics); FID needs its statistics only, IS nothing
of the reference. `compute` returns every number of the named metrics; `protocol` describes how
they were computed, one line per metric.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from jax.sharding import Mesh
import numpy as np

from ganjax.errors import ConfigError
from ganjax.eval import feature_metrics, fid, inception
from ganjax.eval.inception_score import inception_score

DEFAULT = ("fid", "is", "kid", "pr", "dc")


@dataclasses.dataclass(frozen=True)
class Options:
  """The metrics' parameters (the defaults are the published protocols').

  Attributes:
    is_splits: Inception Score splits.
    kid_subsets, kid_subset_size, kid_seed: KID's random subsets (torch-fidelity's defaults).
    pr_k: the k of precision / recall (stylegan2-ada's ``pr50k3``).
    dc_k: the k of density / coverage (prdc's default).
    mesh: the device mesh of the nearest-neighbour passes (None: all local devices).
    log: receives the progress lines of KID's subsets and the nearest-neighbour passes (None:
      silent).
  """

  is_splits: int = 10
  kid_subsets: int = 100
  kid_subset_size: int = 1000
  kid_seed: int = feature_metrics.TORCH_FIDELITY_SEED
  pr_k: int = 3
  dc_k: int = 5
  mesh: Mesh | None = None
  log: Callable[[str], None] | None = None


@dataclasses.dataclass(frozen=True)
class Metric:
  """One metric: the numbers it gives, whether more is better, what it needs, how it is made.

  `compute(fake, reference, options)` returns a dict with `keys`; `describe(options)` is its
  protocol line.
  """

  name: str
  keys: tuple[str, ...]
  higher_is_better: bool
  needs_features: bool
  compute: Callable[[fid.Extracted, fid.Reference, Options], dict[str, float]]
  describe: Callable[[Options], str]


def _fid(fake: fid.Extracted, ref: fid.Reference, options: Options) -> dict[str, float]:
  s, r = fake.stats, ref.stats
  if options.log is not None:
    options.log(f"FID: the square root of a {len(s.mu)}x{len(s.mu)} covariance product")
  finite = np.isfinite(s.sigma).all() and np.isfinite(s.mu).all()
  return {"fid": fid.frechet_distance(s.mu, s.sigma, r.mu, r.sigma) if finite
          else float("nan")}


def _is(fake: fid.Extracted, ref: fid.Reference, options: Options) -> dict[str, float]:
  del ref
  mean, std = inception_score(fake.logits, options.is_splits)
  return {"inception_score": mean, "inception_score_std": std}


def _kid(fake: fid.Extracted, ref: fid.Reference, options: Options) -> dict[str, float]:
  mean, std = feature_metrics.kid(fake.features, ref.features, num_subsets=options.kid_subsets,
                                  subset_size=options.kid_subset_size, seed=options.kid_seed,
                                  log=options.log)
  return {"kid": mean, "kid_std": std}


def _pr(fake: fid.Extracted, ref: fid.Reference, options: Options) -> dict[str, float]:
  precision, recall = feature_metrics.precision_recall(
      ref.features, fake.features, options.pr_k, mesh=options.mesh, log=options.log)
  return {"precision": precision, "recall": recall}


def _dc(fake: fid.Extracted, ref: fid.Reference, options: Options) -> dict[str, float]:
  density, coverage = feature_metrics.density_coverage(
      ref.features, fake.features, options.dc_k, mesh=options.mesh, log=options.log)
  return {"density": density, "coverage": coverage}


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("fid", ("fid",), False, False, _fid,
           lambda o: "FID: pytorch-fid's Frechet distance of the pool statistics (scipy sqrtm, "
                     "eps 1e-6)"),
    Metric("is", ("inception_score", "inception_score_std"), True, False, _is,
           lambda o: f"IS: exp E KL(p(y|x)||p(y)) of the 1008 unbiased logits, mean +- std "
                     f"over {o.is_splits} splits"),
    Metric("kid", ("kid", "kid_std"), False, True, _kid,
           lambda o: f"KID: unbiased MMD^2, kernel (x.y/2048+1)^3, mean +- std over "
                     f"{o.kid_subsets} subsets of {o.kid_subset_size} (torch-fidelity, samples "
                     f"as input1, seed {o.kid_seed})"),
    Metric("pr", ("precision", "recall"), True, True, _pr,
           lambda o: f"precision/recall: Kynkaanniemi et al. 2019, k={o.pr_k}, stylegan2-ada "
                     f"pr50k3's rule (<=), float64 distances"),
    Metric("dc", ("density", "coverage"), True, True, _dc,
           lambda o: f"density/coverage: Naeem et al. 2020, k={o.dc_k}, as prdc.compute_prdc"),
)}


def parse(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
  """``'fid,is,kid'`` -> ('fid', 'is', 'kid') in the registry's order; ``'all'``: every metric.

  Raises a one-line ConfigError for an unknown name or an empty list.
  """
  names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
  names = [n for n in names if n]
  if names == ["all"]:
    return tuple(METRICS)
  unknown = [n for n in names if n not in METRICS]
  if unknown or not names:
    raise ConfigError(f"unknown metrics {unknown or text!r}: choose from {', '.join(METRICS)} "
                      f"(comma-separated) or 'all'")
  return tuple(n for n in METRICS if n in names)


def keys(names: tuple[str, ...]) -> tuple[str, ...]:
  """Every number the named metrics give, in order."""
  return tuple(k for n in names for k in METRICS[n].keys)


def higher_is_better(key: str) -> bool:
  """Whether a larger value of the number `key` (e.g. ``'fid'``, ``'recall'``) is better."""
  for metric in METRICS.values():
    if key in metric.keys and not key.endswith("_std"):
      return metric.higher_is_better
  choices = [k for k in keys(tuple(METRICS)) if not k.endswith("_std")]
  raise ConfigError(f"{key!r} is not a metric value to rank by: choose from {', '.join(choices)}")


def needs_features(names: tuple[str, ...]) -> bool:
  """Whether the named metrics need the pool features of both sets (not only statistics)."""
  return any(METRICS[n].needs_features for n in names)


def compute(names: tuple[str, ...], fake: fid.Extracted, reference: fid.Reference,
            options: Options = Options()) -> dict[str, float]:
  """The numbers of the named metrics of the generated images `fake` against `reference`."""
  if needs_features(names) and (fake.features is None or reference.features is None):
    missing = [n for n in names if METRICS[n].needs_features]
    raise ConfigError(f"metrics {', '.join(missing)} need the pool features of both image sets "
                      f"(a statistics-only reference has none)")
  result: dict[str, float] = {}
  for name in names:
    result.update(METRICS[name].compute(fake, reference, options))
  return result


def protocol(names: tuple[str, ...], reference_key: str, num_samples: int,
             extractor: inception.InceptionExtractor, options: Options = Options()) -> str:
  """How the numbers were computed: the shared feature pass, then one line per metric."""
  head = (f"Inception v3 of pytorch-fid (weights sha256 {extractor.digest[:16]}), pool3 2048-d "
          f"/ unbiased 1008 logits, uint8/255 bilinear-resized to {extractor.input_size}x"
          f"{extractor.input_size} (align_corners=False) then 2x-1; {num_samples} samples vs "
          f"reference {reference_key}")
  return "\n".join([head] + [METRICS[n].describe(options) for n in names])


if __name__ == "__main__":
  from ganjax.cli import fid as fid_cli  # pylint: disable=g-import-not-at-top
  fid_cli.run()
