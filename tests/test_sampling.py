"""Sampling by (seed, index): the same bytes for any batch size, device count and subset of
indices; truncation, explicit latents and interpolation.

The invariance tests compare the generator's float images (the bytes are rounded from them):
the tiny models' rounding differences between batch shapes (~1e-8) rarely move a byte."""

import contextlib
import os
import socket
import subprocess
import sys

import flax.linen
import flax.serialization
import jax
import numpy as np
import pytest

from ganjax.data.spec import DataSpec
from ganjax.errors import ConfigError
from ganjax.eval import sampling
from ganjax.gan import build as experiment
from ganjax.models import conditioning
from ganjax.runtime import mesh as mesh_lib
from tests.conftest import REPO_ROOT, subprocess_env
from tests.tiny import tiny_config

NUM = 40  # more than one chunk (sampling.CHUNK_SIZE)
SPEC = DataSpec((8, 8, 3), tuple(f"class{k}" for k in range(10)))


def build(name: str = "cgan"):
  """A tiny GAN and its generator variables, kernels scaled up for varied images (width 8:
  XLA's CPU convolutions round its last image of a batch differently on 1 and 4 devices)."""
  gan = experiment.build_gan(tiny_config(name, **{"generator.width": 8}), SPEC)
  state = jax.jit(gan.init)(jax.random.PRNGKey(0))
  variables = jax.tree.map(lambda x: x * 3.0 if x.ndim >= 2 else x, state.sampling_variables)
  return gan, jax.device_get(variables)


@pytest.fixture(scope="module")
def tiny():
  gan, variables = build()
  return gan, variables, sampling.Sampler(gan, mesh_lib.make_mesh(), batch_size=4)


@contextlib.contextmanager
def float_images():
  """Within: the samplers hand out the generator's float images instead of their bytes."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(sampling, "to_uint8", np.asarray)
    yield


def _all(batches):
  out = list(batches)
  return np.concatenate([x for x, _ in out]), np.concatenate([y for _, y in out])


@pytest.fixture(scope="module")
def reference(tiny):
  """Samples 0..NUM-1 of seed 1, 4 at a time: bytes, labels and float images."""
  _, variables, sampler = tiny
  images, labels = _all(sampler.batches(variables, NUM, seed=1))
  with float_images():
    floats, _ = _all(sampler.batches(variables, NUM, seed=1))
  return images, labels, floats


def test_images_do_not_depend_on_batch_size_or_the_other_indices(tiny, reference):
  gan, variables, sampler = tiny
  images, labels, floats = reference
  assert [len(x) for x, _ in sampler.batches(variables, 10)] == [4, 4, 2]
  assert images.dtype == np.uint8 and images.shape == (NUM, 8, 8, 3)
  np.testing.assert_array_equal(images, sampling.to_uint8(floats))
  assert len(np.unique(images.reshape(NUM, -1), axis=0)) == NUM  # varied images
  np.testing.assert_array_equal(labels, np.arange(NUM) % 10)
  wide = sampling.Sampler(gan, mesh_lib.make_mesh(), batch_size=16)
  np.testing.assert_array_equal(_all(wide.batches(variables, NUM, seed=1))[0], images)
  picked = [35, 3, 4, 5, 0]
  with float_images():
    np.testing.assert_array_equal(_all(wide.batches(variables, NUM, seed=1))[0], floats)
    sub, sub_labels = wide.sample(variables, picked, seed=1)
    np.testing.assert_array_equal(sub, floats[picked])
    np.testing.assert_array_equal(sub_labels, np.asarray(picked) % 10)
  other_seed, _ = wide.sample(variables, picked, seed=2)
  assert not np.array_equal(other_seed, images[picked])


def _child(variables_path: str, out: str, devices: int, process_id: int = 0,
           num_processes: int = 1, port: int = 0) -> subprocess.Popen:
  """``python -m tests.test_sampling`` (`_sample_in_child`) on `devices` forced CPU devices;
  its output goes to ``<out>.<process_id>.log``."""
  with open(f"{out}.{process_id}.log", "w") as log:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_sampling", variables_path, out, str(process_id),
         str(num_processes), str(port)],
        cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        env=subprocess_env(JAX_PLATFORMS="cpu",
                           XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}"))


def _finish(children: list[subprocess.Popen], out: str) -> None:
  """Waits for the children; kills them all if one fails or hangs."""
  try:
    for process_id, child in enumerate(children):
      child.wait(timeout=600)
      with open(f"{out}.{process_id}.log") as log:
        assert child.returncode == 0, log.read()[-3000:]
  finally:
    for child in children:
      if child.poll() is None:
        child.kill()


@pytest.fixture(scope="module")
def variables_file(tiny, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("variables") / "variables.msgpack")
  with open(path, "wb") as f:
    f.write(flax.serialization.to_bytes(tiny[1]))
  return path


def _check_child_images(out: str, reference) -> None:
  with np.load(out) as child_images:
    np.testing.assert_array_equal(child_images["images"], reference[0])
    np.testing.assert_array_equal(child_images["floats"], reference[2])


@pytest.mark.slow
def test_one_and_four_devices_give_the_same_images(variables_file, reference, tmp_path):
  out = str(tmp_path / "four.npz")
  _finish([_child(variables_file, out, 4)], out)
  _check_child_images(out, reference)


@pytest.mark.slow
def test_one_and_two_processes_give_the_same_images(variables_file, reference, tmp_path):
  """Two processes of two devices each (jax.distributed, gloo collectives)."""
  out = str(tmp_path / "two.npz")
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  _finish([_child(variables_file, out, 2, i, 2, port) for i in range(2)], out)
  _check_child_images(out, reference)


def test_latents_follow_the_protocol(tiny):
  _, _, sampler = tiny
  indices = np.asarray([0, 7, 33, 2**32 - 1])
  z = sampler.latents(indices, seed=5)
  direct = np.stack([jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(5), int(i)), (8,))
                     for i in indices])
  np.testing.assert_array_equal(z, direct)
  truncated = sampler.latents(np.arange(200), seed=5, truncation=0.5)
  assert truncated.shape == (200, 8) and np.abs(truncated).max() <= 0.5
  assert np.abs(truncated).max() > 0.45  # fills the interval, not squeezed into the middle
  with pytest.raises(ConfigError, match="truncation must be a number > 0"):
    sampler.latents([0], truncation=0.0)
  with pytest.raises(ConfigError, match=r"\[0, 2\*\*32\)"):
    sampler.latents([-1])


def test_explicit_latents_give_the_samples_images(tiny, reference):
  _, variables, sampler = tiny
  images, labels, floats = reference
  picked = np.asarray([9, 33, 2])
  z = sampler.latents(picked, seed=1)
  np.testing.assert_array_equal(sampler.images(variables, z, labels[picked], slots=picked),
                                images[picked])
  with float_images():
    np.testing.assert_array_equal(sampler.images(variables, z, labels[picked], slots=picked),
                                  floats[picked])
  with pytest.raises(ConfigError, match="needs labels"):
    sampler.images(variables, z)
  with pytest.raises(ConfigError, match="latents must have shape"):
    sampler.images(variables, z[:, :3], labels[picked])


def test_interpolation_ends_are_the_endpoint_samples(tiny):
  _, variables, sampler = tiny
  endpoints = np.asarray([[3, 36], [10, 11]])
  with float_images():
    images, latents, classes = sampler.interpolate(variables, endpoints, 5, seed=1)
    assert images.shape == (2, 5, 8, 8, 3) and latents.shape == (2, 5, 8)
    np.testing.assert_array_equal(classes, [[3, 6], [0, 1]])  # the samples' own: i mod K
    for row, (a, b) in enumerate(endpoints):
      ends, _ = sampler.sample(variables, [a, b], seed=1)
      np.testing.assert_array_equal(images[row, 0], ends[0])
      np.testing.assert_array_equal(images[row, -1], ends[1])
      np.testing.assert_array_equal(latents[row, [0, -1]], sampler.latents([a, b], seed=1))
    # Across classes: the middle image is that of the middle latent with the two classes'
    # embeddings mixed half and half.
    mix = np.zeros((1, 10), np.float32)
    mix[0, [3, 6]] = 0.5
    np.testing.assert_array_equal(
        images[0, 2], sampler.images(variables, latents[0, 2:3], mix, slots=[2])[0])
    one_class = sampler.images(variables, latents[0, 2:3], [3], slots=[2])[0]
    assert np.abs(images[0, 2] - one_class).max() > 1e-3
  assert not np.array_equal(images[:, 1], images[:, 0])
  fixed, _, fixed_classes = sampler.interpolate(variables, endpoints, 3, seed=1, label=7)
  np.testing.assert_array_equal(fixed_classes, [[7, 7], [7, 7]])
  np.testing.assert_array_equal(fixed[:, [0, -1]].reshape(4, 8, 8, 3),
                                sampler.sample(variables, endpoints.reshape(-1), seed=1,
                                               label=7)[0])
  with pytest.raises(ConfigError, match="at least 2 steps"):
    sampler.interpolate(variables, endpoints, 1)
  assert sampler.latents([], seed=1).shape == (0, 8)
  with pytest.raises(ConfigError, match=r"or class weights \[1, 10\]"):
    sampler.images(variables, latents[0, :1], np.zeros((1, 9), np.float32))


def test_class_weights_mix_the_class_embeddings():
  embed = flax.linen.Embed(10, 6)
  table = embed.init(jax.random.PRNGKey(0), np.zeros(1, np.int32))["params"]["embedding"]
  weights = np.zeros((2, 10), np.float32)
  weights[0, [2, 7]] = 0.25, 0.75
  weights[1, 4] = 1.0
  got = embed.apply({"params": {"embedding": table}}, weights, 10,
                    method=lambda m, w, k: conditioning.class_embedding(m, w, k))
  np.testing.assert_allclose(got[0], 0.25 * table[2] + 0.75 * table[7], rtol=1e-6)
  np.testing.assert_array_equal(got[1], table[4])
  with pytest.raises(ValueError, match="must have 10 columns"):
    conditioning.class_embedding(lambda y: table[y], weights[:, :9], 10)


@pytest.mark.parametrize("name", ["cgan", "sngan"])
def test_one_hot_class_weights_are_the_class_labels(name):
  """Class weights [B, K] through the one-hot input (cGAN) and the class embeddings of
  conditional batch norm (SNGAN): one-hot rows give the images of the integer labels."""
  gan = experiment.build_gan(tiny_config(name), SPEC)
  assert gan.generator.num_classes == 10
  variables = jax.jit(gan.init)(jax.random.PRNGKey(0)).sampling_variables
  z = jax.random.normal(jax.random.PRNGKey(1), (4, gan.generator.z_dim))
  labels = np.asarray([0, 3, 9, 3])
  apply = jax.jit(lambda v, z, y: gan.generator.apply(v, z, y, train=False))
  np.testing.assert_array_equal(apply(variables, z, np.eye(10, dtype=np.float32)[labels]),
                                apply(variables, z, labels))
def test_slerp_keeps_the_ends_and_follows_the_arc():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
  path = sampling.slerp(a, b, np.linspace(0, 1, 7))
  np.testing.assert_array_equal(path[0], a)
  np.testing.assert_array_equal(path[-1], b)
  # Directions along the great circle: equal angles between neighbours.
  unit = path / np.linalg.norm(path, axis=1, keepdims=True)
  angles = np.arccos(np.clip(np.sum(unit[1:] * unit[:-1], axis=1), -1, 1))
  np.testing.assert_allclose(angles, angles[0], rtol=1e-4)
  norms = np.linalg.norm(path, axis=1)
  np.testing.assert_allclose(norms, np.linspace(norms[0], norms[-1], 7), rtol=1e-5)


def test_pack_puts_each_index_at_its_position():
  table = sampling.pack(np.asarray([3, 3, 0, 30, 3]), chunk_size=31)
  assert table.shape == (3, 31)
  assert list(table[:, 3]) == [0, 1, 4] and table[0, 0] == 2 and table[0, 30] == 3
  assert (table >= 0).sum() == 5


def test_bad_requests_are_one_line_errors(tiny):
  gan, variables, sampler = tiny
  with pytest.raises(ConfigError, match=r"class 10 is out of range.*\(0\.\.9\)"):
    next(sampler.batches(variables, 4, label=10))
  with pytest.raises(ConfigError, match="exactly one of num and indices"):
    next(sampler.batches(variables, 4, indices=[1]))
  with pytest.raises(ConfigError, match="batch_size must be at least 1"):
    sampling.Sampler(gan, mesh_lib.make_mesh(), batch_size=0)
  unconditional = experiment.build_gan(tiny_config("dcgan"), SPEC)
  plain = sampling.Sampler(unconditional, mesh_lib.make_mesh())
  with pytest.raises(ConfigError, match="unconditional"):
    plain.labels(np.arange(3), 2)
  assert plain.labels(np.arange(3)) is None


def _sample_in_child(variables_path: str, out: str, process_id: str, num_processes: str,
                     port: str) -> None:
  """Samples like `reference` on 4 devices (of 1 or 2 processes), 16 at a time; process 0
  writes the images."""
  if int(num_processes) > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                               num_processes=int(num_processes), process_id=int(process_id))
  assert jax.device_count() == 4 and jax.process_count() == int(num_processes)
  gan, template = build()
  with open(variables_path, "rb") as f:
    variables = flax.serialization.from_bytes(template, f.read())
  sampler = sampling.Sampler(gan, mesh_lib.make_mesh(), batch_size=16)
  images, _ = _all(sampler.batches(variables, NUM, seed=1))
  with float_images():
    floats, _ = _all(sampler.batches(variables, NUM, seed=1))
  if jax.process_index() == 0:
    np.savez(out, images=images, floats=floats)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  _sample_in_child(*sys.argv[1:])
