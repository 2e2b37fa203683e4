"""KID, precision / recall, density / coverage vs torch-fidelity, prdc and a numpy reference."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ganjax.errors import ConfigError
from ganjax.eval import feature_metrics as fm
from tests.conftest import subprocess_env

DIM = 2048


def inception_like(seed: int, n: int, scale: float = 1.0, dim: int = DIM,
                   dtype=np.float32) -> np.ndarray:
  """Non-negative features shaped like Inception pool features (mean ~0.4)."""
  rng = np.random.default_rng(seed)
  return (rng.gamma(2.0, 0.2, (n, dim)) * scale).astype(dtype)


@pytest.fixture(scope="module", params=[(0, 1, 1.0), (2, 3, 1.03), (4, 5, 1.1)],
                ids=["same-dist", "near", "shifted"])
def pair(request):
  real_seed, fake_seed, scale = request.param
  return inception_like(real_seed, 900), inception_like(fake_seed, 700, scale)


# -- KID -----------------------------------------------------------------------------------------


def torch_fidelity_kid(real, fake, **kwargs):
  torch = pytest.importorskip("torch", reason="torch-fidelity's KID needs torch")
  metric_kid = pytest.importorskip("torch_fidelity.metric_kid",
                                   reason="torch-fidelity is not installed")
  out = metric_kid.kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake),
                                          verbose=False, **kwargs)
  return out[metric_kid.KEY_METRIC_KID_MEAN], out[metric_kid.KEY_METRIC_KID_STD]


def test_kid_equals_torch_fidelity_including_its_subset_draw(pair):
  real, fake = (x.astype(np.float64) for x in pair)
  for seed in (0, 2020):
    ours = fm.kid(real, fake, num_subsets=8, subset_size=300, seed=seed)
    ref = torch_fidelity_kid(real, fake, kid_subsets=8, kid_subset_size=300, rng_seed=seed)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_kid_on_explicit_subsets_equals_torch_fidelity_mmd2(pair):
  metric_kid = pytest.importorskip("torch_fidelity.metric_kid",
                                   reason="torch-fidelity is not installed")
  real, fake = (x.astype(np.float64) for x in pair)
  rng = np.random.default_rng(7)
  subsets = [(rng.choice(len(real), 200, replace=False), rng.choice(len(fake), 200, replace=False))
             for _ in range(5)]
  kwargs = dict(kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
  ref = []
  for ri, fi in subsets:
    x, y = real[ri], fake[fi]
    ref.append(metric_kid.mmd2(metric_kid.kernel_poly(x, x, **kwargs),
                               metric_kid.kernel_poly(x, y, **kwargs),
                               metric_kid.kernel_poly(y, y, **kwargs)))
  values = fm.kid_subset_values(real, fake, subsets=subsets)
  np.testing.assert_allclose(values, ref, rtol=1e-6)
  np.testing.assert_allclose(fm.kid(real, fake, subsets=subsets), (np.mean(ref), np.std(ref)),
                             rtol=1e-6)
  # Another kernel: the parameters reach the kernel as in torch-fidelity.
  kwargs = dict(kid_kernel_poly_degree=2, kid_kernel_poly_gamma=0.01, kid_kernel_poly_coef0=0.5)
  x, y = real[subsets[0][0]], fake[subsets[0][1]]
  ref = metric_kid.mmd2(metric_kid.kernel_poly(x, x, **kwargs),
                        metric_kid.kernel_poly(x, y, **kwargs),
                        metric_kid.kernel_poly(y, y, **kwargs))
  ours = fm.kid_subset_values(real, fake, degree=2, gamma=0.01, coef0=0.5, subsets=subsets[:1])
  np.testing.assert_allclose(ours, [ref], rtol=1e-6)


def test_kid_of_float32_features_is_torch_fidelity_without_its_float32_rounding():
  real, fake = inception_like(0, 1100), inception_like(3, 900, 1.03)
  ours = fm.kid(real, fake, num_subsets=5, subset_size=300, seed=1)
  exact = torch_fidelity_kid(real.astype(np.float64), fake.astype(np.float64), kid_subsets=5,
                             kid_subset_size=300, rng_seed=1)
  rounded = torch_fidelity_kid(real, fake, kid_subsets=5, kid_subset_size=300, rng_seed=1)
  np.testing.assert_allclose(ours, exact, rtol=1e-6)
  # torch-fidelity sums float32 kernels (about 2 here) into an MMD^2 of about 1e-3.
  assert abs(ours[0] - rounded[0]) < 1e-6


def test_kid_clips_the_subset_size_and_rejects_bad_subsets():
  real, fake = inception_like(0, 60, dim=16), inception_like(1, 40, dim=16)
  subsets = fm.kid_subsets(60, 40, num_subsets=3, subset_size=1000, seed=0)
  assert [(len(r), len(f)) for r, f in subsets] == [(40, 40)] * 3
  np.testing.assert_allclose(fm.kid(real, fake, num_subsets=3, subset_size=1000),
                             fm.kid(real, fake, subsets=subsets), rtol=1e-12)
  with pytest.raises(ConfigError, match="out of range"):
    fm.kid(real, fake, subsets=[(np.arange(40), np.arange(1, 41))])
  with pytest.raises(ConfigError, match="dimension"):
    fm.kid(real, fake[:, :8])


def test_full_set_mmd2_is_torch_fidelity_mmd2_of_the_full_kernels():
  metric_kid = pytest.importorskip("torch_fidelity.metric_kid",
                                   reason="torch-fidelity is not installed")
  real, fake = inception_like(0, 300, dtype=np.float64), inception_like(1, 300, 1.05,
                                                                        dtype=np.float64)
  kwargs = dict(kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
  ref = metric_kid.mmd2(metric_kid.kernel_poly(real, real, **kwargs),
                        metric_kid.kernel_poly(real, fake, **kwargs),
                        metric_kid.kernel_poly(fake, fake, **kwargs))
  for block_rows, block_cols in [(64, 100), (300, 300), (77, 1000)]:
    ours = fm.mmd2_unbiased(real, fake, block_rows=block_rows, block_cols=block_cols)
    np.testing.assert_allclose(ours, ref, rtol=1e-9)
  # Different sizes: the estimator with N(N-1), M(M-1) and NM.
  x, y = real[:120], fake[:90]
  k = lambda a, b: (a @ b.T / DIM + 1) ** 3
  expected = ((k(x, x).sum() - np.trace(k(x, x))) / (120 * 119)
              + (k(y, y).sum() - np.trace(k(y, y))) / (90 * 89) - 2 * k(x, y).mean())
  np.testing.assert_allclose(fm.mmd2_unbiased(x, y, block_rows=50, block_cols=33), expected,
                             rtol=1e-9)


# -- precision, recall, density, coverage --------------------------------------------------------


def compute_prdc(real, fake, k):
  prdc = pytest.importorskip("prdc", reason="prdc is not installed")
  return prdc.compute_prdc(real, fake, k)


def stylegan2_ada_precision_recall(real, fake, k=3):
  """stylegan2-ada-pytorch's pr50k3 in numpy: float64 distances, kthvalue(k + 1), ``<=``."""

  def dist(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0))

  results = []
  for manifold, probes in [(real, fake), (fake, real)]:
    d = dist(manifold, manifold)
    np.fill_diagonal(d, 0)
    kth = np.sort(d, axis=1)[:, k]
    results.append(float((dist(probes, manifold) <= kth[None, :]).any(axis=1).mean()))
  return tuple(results)


def test_prdc_equals_prdc_compute_prdc(pair, capsys):
  real, fake = pair
  ours = fm.prdc(real, fake, 5)
  ref = compute_prdc(real, fake, 5)
  capsys.readouterr()  # compute_prdc prints the sample counts
  assert ours.keys() == ref.keys()
  for name in ours:
    assert ours[name] == pytest.approx(float(ref[name]), rel=1e-12, abs=1e-12), name
  assert fm.density_coverage(real, fake, 5) == (ours["density"], ours["coverage"])


def test_precision_recall_equals_stylegan2_ada_formula(pair):
  real, fake = pair
  ours = fm.precision_recall(real, fake, 3)
  assert ours == pytest.approx(stylegan2_ada_precision_recall(real, fake, 3), abs=1e-12)


def test_identical_sets_are_fully_precise_recalled_and_covered():
  x = inception_like(8, 400, dim=256)
  assert fm.precision_recall(x, x.copy()) == (1.0, 1.0)
  result = fm.prdc(x, x.copy(), 5)
  assert (result["precision"], result["recall"], result["coverage"]) == (1.0, 1.0, 1.0)


def test_a_single_repeated_fake_has_almost_no_recall(capsys):
  real = inception_like(9, 600, dim=512)
  fake = np.repeat(inception_like(10, 1, dim=512), 400, axis=0)
  _, recall = fm.precision_recall(real, fake)
  assert recall < 0.05
  result = fm.prdc(real, fake, 5)
  assert result["recall"] < 0.05 and result["coverage"] < 0.05
  ref = compute_prdc(real, fake, 5)
  capsys.readouterr()
  assert result == pytest.approx({k: float(v) for k, v in ref.items()}, abs=1e-12)


def test_distances_equal_scikit_learn_for_any_block_size():
  metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
  x, y = inception_like(11, 301, dim=64), inception_like(12, 203, dim=64)
  ref_xy = metrics.pairwise_distances(x, y)
  ref_xx = metrics.pairwise_distances(x)
  for rows, cols in [(7, 13), (64, 100), (301, 1000)]:
    d = fm.pairwise_distances(x, y, block_rows=rows, block_cols=cols)
    assert d.dtype == np.float32
    np.testing.assert_allclose(d, ref_xy, rtol=1e-6)
    np.testing.assert_allclose(fm.pairwise_distances(x, block_rows=rows, block_cols=cols),
                               ref_xx, rtol=1e-6, atol=0)


def test_block_sizes_do_not_change_the_results():
  real, fake = inception_like(13, 523, dim=32), inception_like(14, 411, 1.05, dim=32)
  radii = fm.knn_radii(real, 5)
  expected = (fm.prdc(real, fake, 5), fm.precision_recall(real, fake, 3))
  assert 0 < expected[0]["precision"] < 1 and 0 < expected[1][1] < 1
  for rows, cols in [(7, 13), (100, 64), (1000, 50)]:
    kwargs = dict(block_rows=rows, block_cols=cols)
    np.testing.assert_array_equal(fm.knn_radii(real, 5, **kwargs), radii)
    assert (fm.prdc(real, fake, 5, **kwargs), fm.precision_recall(real, fake, 3, **kwargs)) \
        == expected


def test_knn_radii_are_prdc_radii():
  prdc = pytest.importorskip("prdc", reason="prdc is not installed")
  x = inception_like(15, 400, dim=128)
  for k in (1, 3, 5):
    np.testing.assert_array_equal(fm.knn_radii(x, k, block_rows=90, block_cols=70),
                                  prdc.prdc.compute_nearest_neighbour_distances(x, k))


def test_fast_float32_mode_agrees_up_to_near_ties():
  real, fake = inception_like(16, 400, dim=64), inception_like(17, 300, 1.03, dim=64)
  exact, fast = fm.prdc(real, fake, 5), fm.prdc(real, fake, 5, fast=True)
  for name in exact:
    assert abs(exact[name] - fast[name]) <= 0.02, name


def test_bad_inputs_are_one_line_config_errors():
  x = inception_like(0, 10, dim=8)
  for call, match in [(lambda: fm.prdc(x, x[:, :4]), "dimension"),
                      (lambda: fm.prdc(x, x, k=10), "k=10"),
                      (lambda: fm.precision_recall(x[0], x), "2-D"),
                      (lambda: fm.knn_radii(np.full((5, 2), np.nan), 1), "NaN"),
                      (lambda: fm.prdc(x, x, k=0), "positive"),
                      (lambda: fm.kid(x, x, subset_size=1), "at least 2")]:
    with pytest.raises(ConfigError, match=match) as info:
      call()
    assert "\n" not in str(info.value)


def test_compute_all_keys():
  real, fake = inception_like(0, 200, dim=16), inception_like(1, 150, dim=16)
  result = fm.compute_all(real, fake, kid_num_subsets=3, kid_subset_size=50)
  assert set(result) == {"kid", "kid_std", "precision", "recall", "density", "coverage"}
  assert result["kid"] == fm.kid(real, fake, num_subsets=3, subset_size=50)[0]


SHARDED_CHECK = """
import jax, numpy as np
from jax.sharding import Mesh
from ganjax.eval import feature_metrics as fm
assert len(jax.devices()) == 2, jax.devices()
rng = np.random.default_rng(0)
real = rng.gamma(2.0, 0.2, (301, 32)).astype(np.float32)
fake = rng.gamma(2.0, 0.21, (257, 32)).astype(np.float32)
one = Mesh(np.array(jax.devices()[:1]), ("data",))
two = Mesh(np.array(jax.devices()).reshape(2, 1), ("data", "model"))
for kwargs in [dict(block_rows=40, block_cols=64), dict(block_rows=301, block_cols=50)]:
  assert fm.prdc(real, fake, 5, **kwargs) == fm.prdc(real, fake, 5, mesh=one, **kwargs)
  assert fm.precision_recall(real, fake, 3, mesh=two, **kwargs) == fm.precision_recall(
      real, fake, 3, mesh=one, **kwargs)
print("ok")
"""


def test_row_blocks_shard_over_two_devices(repo_root):
  env = subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=2",
                       JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", SHARDED_CHECK], env=env, cwd=repo_root,
                       capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
