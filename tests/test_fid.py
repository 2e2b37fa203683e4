"""FID, Inception Score and the FID Inception port against numpy formulas and pytorch-fid.

The port-parity tests build pytorch-fid's ``InceptionV3`` with random weights
(tests/random_inception.py: He-normal convs and batch norm statistics near the identity,
so activations stay O(1) through the network; pytorch-fid's download is patched out), convert
its state dict with ``python -m ganjax.eval.convert_inception`` and compare the outputs.
"""

import os
import subprocess
import sys
from unittest import mock

from flax import traverse_util
import jax
import numpy as np
import pytest
from scipy import linalg

from ganjax import errors
from ganjax.eval import convert_inception, fid, inception
from ganjax.eval.inception_score import inception_score
from tests.conftest import REPO_ROOT, subprocess_env
from tests.tiny import random_inception_weights


def rel_diff(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


# -- statistics, FID, IS against numpy ----------------------------------------------------------


def test_streaming_statistics_equal_numpy_mean_and_cov():
  x = np.random.default_rng(0).normal(size=(203, 7)) * 4.0 + 100.0  # large mean: shifted sums
  acc = fid.StatisticsAccumulator()
  for start in range(0, 203, 50):
    acc.add(x[start:start + 50].astype(np.float32))
  stats = acc.result()
  x32 = x.astype(np.float32).astype(np.float64)
  assert stats.count == 203
  np.testing.assert_allclose(stats.mu, x32.mean(0), rtol=1e-12)
  np.testing.assert_allclose(stats.sigma, np.cov(x32, rowvar=False), rtol=1e-9, atol=1e-10)


def test_frechet_distance_of_diagonal_gaussians():
  """Commuting covariances: FID = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2."""
  rng = np.random.default_rng(1)
  mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
  s1, s2 = rng.uniform(0.1, 2.0, 5), rng.uniform(0.1, 2.0, 5)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
  assert fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected,
                                                                                   rel=1e-10)


def _softmax(logits):
  e = np.exp(logits - logits.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def test_inception_score_equals_the_original_formula():
  """openai/improved-gan: exp(mean_x KL(p(y|x) || p(y))) per split; mean and std of splits."""
  logits = np.random.default_rng(2).normal(size=(103, 1008)) * 3.0
  preds = _softmax(logits)
  scores = []
  for i in range(10):
    part = preds[(i * 103 // 10):((i + 1) * 103 // 10), :]
    kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
    scores.append(np.exp(np.mean(np.sum(kl, 1))))
  mean, std = inception_score(logits.astype(np.float32), splits=10)
  assert mean == pytest.approx(np.mean(scores), rel=1e-5)
  assert std == pytest.approx(np.std(scores), rel=1e-4)


def test_inception_score_extremes():
  confident = np.full((100, 1008), -30.0)
  confident[np.arange(100), np.arange(100) % 10] = 30.0  # 10 classes, equally often, certain
  assert inception_score(confident, splits=2)[0] == pytest.approx(10.0, rel=1e-6)
  assert inception_score(np.zeros((20, 1008)), splits=2) == pytest.approx((1.0, 0.0))


class _FakeExtractor:
  """Pool features = mean colour, repeated; counts the images it sees."""

  digest = "f" * 64

  def __init__(self):
    self.seen = 0

  def __call__(self, images):
    self.seen += len(images)
    pool = np.repeat(images.reshape(len(images), -1, 3).mean(1), 4, axis=1) / 255.0
    pool = pool + np.random.default_rng(self.seen).normal(0, 0.01, pool.shape)
    return {"pool": pool, "logits_unbiased": np.zeros((len(images), 1008), np.float32)}


def test_reference_statistics_are_cached_by_key(tmp_path):
  extractor = _FakeExtractor()
  stats, key = fid.reference_statistics("synthetic:40", "train", extractor, num_images=30,
                                        image_size=8, cache_dir=str(tmp_path), batch_size=16)
  assert extractor.seen == 30 and stats.count == 30
  assert key == f"synthetic:40:train|n=30|size=8|inception={'f' * 16}"
  again, _ = fid.reference_statistics("synthetic:40", "train", extractor, num_images=30,
                                      image_size=8, cache_dir=str(tmp_path))
  assert extractor.seen == 30  # from the cache
  np.testing.assert_array_equal(again.mu, stats.mu)
  np.testing.assert_array_equal(again.sigma, stats.sigma)
  fid.reference_statistics("synthetic:40", "train", extractor, num_images=20, image_size=8,
                           cache_dir=str(tmp_path))
  assert extractor.seen == 50  # another count is another key
  with pytest.raises(errors.DataError, match="fewer than the 41"):
    fid.reference_statistics("synthetic:40", "train", extractor, num_images=41, image_size=8,
                             cache_dir=str(tmp_path))


@pytest.mark.parametrize("ref", ["cifar10", "folder:/data", "synthetic:train", ":train"])
def test_reference_needs_a_split(ref):
  with pytest.raises(errors.ConfigError, match="DATASET:SPLIT"):
    fid.parse_reference(ref)


# -- extractor ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
  return random_inception_weights(str(tmp_path_factory.mktemp("inception") / "random.npz"))


def test_extractor_pads_short_batches_and_splits_long_ones(random_weights):
  """Input size 75 (the private test hook) keeps this cheap; 3 images in batches of 2."""
  variables = inception.load_variables(random_weights)
  extractor = inception.InceptionExtractor(variables, batch_size=2, _size=75)
  images = np.random.default_rng(3).integers(0, 256, (3, 16, 12, 3), dtype=np.uint8)
  together = extractor(images)
  assert together["pool"].shape == (3, 2048) and together["logits_unbiased"].shape == (3, 1008)
  assert together["pool"].dtype == np.float32
  swapped = extractor(images[[2, 0]])  # the same compiled batch shape, other neighbours
  for k in ("pool", "logits_unbiased"):
    assert rel_diff(together[k][[2, 0]], swapped[k]) < 1e-5
  assert 0.01 < float(np.std(together["pool"])) < 100.0  # the random weights keep O(1) values
  with pytest.raises(errors.ConfigError, match="uint8 images"):
    extractor(images.astype(np.float32))


def test_load_without_weights_says_how_to_convert(tmp_path, monkeypatch):
  missing = str(tmp_path / "none.npz")
  monkeypatch.setenv(inception.WEIGHTS_ENV, missing)
  assert inception.default_weights_path() == missing
  with pytest.raises(errors.ConfigError,
                     match=r"no FID Inception weights at .*python -m ganjax.eval.convert_inception"):
    inception.load()


def test_weights_of_another_network_are_refused(tmp_path):
  path = str(tmp_path / "other.npz")
  np.savez(path, **{"params/conv/kernel": np.zeros((3, 3, 3, 8), np.float32)})
  with pytest.raises(errors.ConfigError, match="is not a FID Inception weights file"):
    inception.load_variables(path)


# -- against PyTorch / pytorch-fid --------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_modules():
  torch = pytest.importorskip("torch")
  pytest.importorskip("pytorch_fid")
  torch.set_num_threads(2)
  from tests import random_inception  # pylint: disable=g-import-not-at-top
  from pytorch_fid import fid_score  # pylint: disable=g-import-not-at-top
  return torch, random_inception, fid_score


@pytest.mark.parametrize("shape", [(32, 32), (299, 299), (320, 400), (17, 500)])
def test_resize_matches_torch_bilinear(torch_modules, shape):
  torch = torch_modules[0]
  images = np.random.default_rng(4).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
  ours = np.asarray(jax.jit(inception.preprocess)(images))
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
  theirs = 2 * torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear",
                                               align_corners=False) - 1
  np.testing.assert_allclose(ours, theirs.permute(0, 2, 3, 1).numpy(), atol=2e-6)


@pytest.fixture(scope="module")
def converted(torch_modules, tmp_path_factory):
  """(pytorch-fid model, fc weight, ganjax extractor) with the same random weights."""
  torch, random_inception, _ = torch_modules
  state_dict = random_inception.random_state_dict(0)
  folder = tmp_path_factory.mktemp("converted")
  src, out = str(folder / "random.pth"), str(folder / "random.npz")
  torch.save(state_dict, src)
  result = subprocess.run([sys.executable, "-m", "ganjax.eval.convert_inception",
                           f"--src={src}", f"--out={out}"], cwd=REPO_ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"wrote {out}" in result.stdout
  return (random_inception.pytorch_fid_model(state_dict), state_dict["fc.weight"].numpy(),
          inception.load(out, batch_size=2), src)


def test_torch_free_conversion_is_bit_identical_to_the_pytorch_path(converted):
  """The command line reads the .pth without torch (ganjax.eval.pth_reader); its variables
  equal those converted from torch.load's tensors, bit for bit."""
  src = converted[3]
  ours = convert_inception.convert_state_dict(convert_inception.read_state_dict(src))
  reference = convert_inception.convert_state_dict(
      convert_inception.read_state_dict_with_torch(src))
  flat_ours = traverse_util.flatten_dict(ours, sep="/")
  flat_reference = traverse_util.flatten_dict(reference, sep="/")
  assert sorted(flat_ours) == sorted(flat_reference) and len(flat_ours) > 300
  for key, value in flat_reference.items():
    assert flat_ours[key].dtype == value.dtype and np.array_equal(flat_ours[key], value), key


def test_converter_refuses_a_pth_with_a_pickled_callable(tmp_path, torch_modules):
  torch = torch_modules[0]
  marker = tmp_path / "ran"

  class Payload:
    def __reduce__(self):
      return (os.system, (f"touch {marker}",))

  src = str(tmp_path / "evil.pth")
  torch.save({"fc.weight": torch.zeros(2), "x": Payload()}, src)
  result = subprocess.run([sys.executable, "-m", "ganjax.eval.convert_inception",
                           f"--src={src}", f"--out={tmp_path / 'out.npz'}"], cwd=REPO_ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 1 and not marker.exists()
  errors = [l for l in result.stderr.splitlines() if l.startswith("ganjax: error:")]
  assert len(errors) == 1 and "system" in errors[0], result.stderr[-2000:]
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("size", [32, 299])
def test_port_matches_pytorch_fid(torch_modules, converted, size):
  torch = torch_modules[0]
  model, fc_weight, extractor, _ = converted
  images = np.random.default_rng(size).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
  with torch.no_grad():
    pool = model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)[0]
  pool = pool[:, :, 0, 0].numpy()
  ours = extractor(images)
  assert np.max(np.abs(pool)) > 0.1  # O(1) activations: the comparison means something
  assert rel_diff(ours["pool"], pool) < 1e-4
  assert rel_diff(ours["logits_unbiased"], pool @ fc_weight.T) < 1e-4


def _random_statistics(rng, n, d):
  x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
  return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("n", [200, 20])  # 20 samples of 64-d features: rank-deficient sigmas
def test_frechet_distance_matches_pytorch_fid(torch_modules, n):
  fid_score = torch_modules[2]
  rng = np.random.default_rng(n)
  (mu1, s1), (mu2, s2) = _random_statistics(rng, n, 64), _random_statistics(rng, n, 64)
  assert np.linalg.matrix_rank(s1) == min(n - 1, 64)
  theirs = fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
  assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(theirs, rel=1e-6)


def test_frechet_distance_eps_offset_matches_pytorch_fid(torch_modules):
  """A non-finite sqrtm (forced) takes pytorch-fid's eps branch in both."""
  fid_score = torch_modules[2]
  rng = np.random.default_rng(5)
  (mu1, s1), (mu2, s2) = _random_statistics(rng, 10, 32), _random_statistics(rng, 10, 32)
  real_sqrtm = linalg.sqrtm

  def results():
    calls = []

    def sqrtm(a, disp=True):  # non-finite on the first call, as for a singular product
      calls.append(a)
      out = np.full_like(a, np.inf) if len(calls) == 1 else real_sqrtm(a)
      return out if disp else (out, 0.0)

    with mock.patch.object(linalg, "sqrtm", sqrtm):
      ours = fid.frechet_distance(mu1, s1, mu2, s2)
    assert len(calls) == 2
    calls.clear()
    with mock.patch.object(fid_score.linalg, "sqrtm", sqrtm):
      theirs = fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
    assert len(calls) == 2
    return ours, theirs

  ours, theirs = results()
  assert ours == pytest.approx(theirs, rel=1e-6)
  assert ours != pytest.approx(fid.frechet_distance(mu1, s1, mu2, s2), rel=1e-9)


def test_saved_statistics_are_read_by_pytorch_fid(torch_modules, tmp_path):
  fid_score = torch_modules[2]
  stats = fid.Statistics(np.arange(3.0), np.eye(3) * 2.0, 10)
  path = str(tmp_path / "stats.npz")
  stats.save(path, key="k")
  mu, sigma = fid_score.compute_statistics_of_path(path, None, 50, 2048, "cpu")
  np.testing.assert_array_equal(mu, stats.mu)
  np.testing.assert_array_equal(sigma, stats.sigma)
