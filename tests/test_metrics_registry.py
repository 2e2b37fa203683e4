"""The metrics registry (ganjax.eval.metrics) on fixed features: each number is the module's."""

import numpy as np
import pytest

from ganjax.errors import ConfigError
from ganjax.eval import feature_metrics, fid, metrics
from ganjax.eval.inception_score import inception_score


def extracted(rng, n, d, shift=0.0, features=True):
  x = rng.normal(shift, 1.0, (n, d)).astype(np.float32)
  acc = fid.StatisticsAccumulator()
  acc.add(x)
  return fid.Extracted(acc.result(), rng.normal(size=(n, 12)), x if features else None)


@pytest.fixture(scope="module")
def sets():
  rng = np.random.default_rng(0)
  fake = extracted(rng, 120, 16, 0.3)
  real = extracted(rng, 150, 16)
  return fake, fid.Reference(real.stats, "ref", real.features)


def test_every_metric_equals_its_definition(sets):
  fake, ref = sets
  options = metrics.Options(kid_subsets=5, kid_subset_size=50)
  values = metrics.compute(metrics.parse("all"), fake, ref, options)
  assert list(values) == ["fid", "inception_score", "inception_score_std", "kid", "kid_std",
                          "precision", "recall", "density", "coverage"]
  assert values["fid"] == fid.frechet_distance(fake.stats.mu, fake.stats.sigma, ref.stats.mu,
                                               ref.stats.sigma)
  assert (values["inception_score"], values["inception_score_std"]) == inception_score(
      fake.logits, 10)
  # torch-fidelity's argument order: the samples first, its seed 2020
  assert (values["kid"], values["kid_std"]) == feature_metrics.kid(
      fake.features, ref.features, num_subsets=5, subset_size=50, seed=2020)
  assert (values["precision"], values["recall"]) == feature_metrics.precision_recall(
      ref.features, fake.features, 3)
  assert (values["density"], values["coverage"]) == feature_metrics.density_coverage(
      ref.features, fake.features, 5)


def test_progress_lines_of_the_neighbour_passes(sets):
  fake, ref = sets
  lines = []
  metrics.compute(("pr",), fake, ref, metrics.Options(log=lines.append))
  assert lines[-1].startswith("precision/recall k=3: 420/420 rows (100.0%)")  # 150 + 120 + 150


def test_parse_and_directions():
  assert metrics.parse("kid, FID") == ("fid", "kid")
  assert metrics.keys(("is", "dc")) == ("inception_score", "inception_score_std", "density",
                                        "coverage")
  assert not metrics.higher_is_better("fid") and not metrics.higher_is_better("kid")
  assert metrics.higher_is_better("recall") and metrics.higher_is_better("inception_score")
  for bad in ("fid,lpips", ""):
    with pytest.raises(ConfigError, match="unknown metrics"):
      metrics.parse(bad)
  with pytest.raises(ConfigError, match="not a metric value to rank by"):
    metrics.higher_is_better("kid_std")


def test_feature_metrics_need_features(sets):
  fake, ref = sets
  stats_only = fid.Reference(ref.stats, "ref.npz", None)
  assert set(metrics.compute(("fid", "is"), fake, stats_only)) == {
      "fid", "inception_score", "inception_score_std"}
  with pytest.raises(ConfigError, match="kid, dc need the pool features"):
    metrics.compute(("fid", "kid", "dc"), fake, stats_only)


def test_a_statistics_file_takes_its_features_from_beside_it(sets, tmp_path):
  from ganjax.cli import fid as fid_cli  # pylint: disable=g-import-not-at-top
  _, ref = sets
  path = str(tmp_path / "ref.npz")
  ref.stats.save(path)
  with pytest.raises(ConfigError, match="holds statistics only; kid need the reference's"):
    fid_cli._reference(path, ("fid", "kid"), None, 32)  # pylint: disable=protected-access
  assert fid_cli._reference(path, ("fid",), None, 32).features is None  # pylint: disable=protected-access
  np.savez(fid.features_path(path), features=ref.features)
  got = fid_cli._reference(path, ("fid", "kid"), None, 32)  # pylint: disable=protected-access
  np.testing.assert_array_equal(got.features, ref.features)
  np.testing.assert_array_equal(got.stats.mu, ref.stats.mu)


def test_the_metric_computations_log_their_progress(sets):
  fake, ref = sets
  lines = []
  options = metrics.Options(kid_subsets=5, kid_subset_size=50, log=lines.append)
  quiet = metrics.compute(metrics.parse("all"), fake, ref, metrics.Options(kid_subsets=5,
                                                                           kid_subset_size=50))
  assert metrics.compute(metrics.parse("all"), fake, ref, options) == quiet
  assert lines[0] == "FID: the square root of a 16x16 covariance product"
  assert lines[1].startswith("KID 5 subsets of 50: 5/5 subsets (100.0%)")
  assert lines[2].startswith("precision/recall k=3: 420/420 rows (100.0%)")
  assert lines[3].startswith("precision/recall/density/coverage k=5: 420/420 rows (100.0%)")
