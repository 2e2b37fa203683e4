"""The pure training step: purity, EMA, weight clipping, and 1 vs 4 devices."""

import json
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import data
from ganjax.gan import build as experiment
from ganjax.ops import conv, onednn
from tests.conftest import REPO_ROOT, subprocess_env
from tests.tiny import assert_dcgan_generator_moved, tiny_config


def build(name, **overrides):
  config = tiny_config(name, **overrides)
  dataset = data.load_dataset(config.dataset, "train", config.image_size)
  gan = experiment.build_gan(config, experiment.DataSpec(dataset.image_shape,
                                                         dataset.class_names))
  state = jax.jit(gan.init)(jax.random.PRNGKey(config.seed))
  batch = data.training_batch(dataset, seed=0, step=0, batch_size=config.batch_size,
                              n_critic=config.n_critic)
  return gan, state, batch


def test_step_is_pure_and_counts_steps():
  gan, state, batch = build("dcgan")
  step = jax.jit(gan.train_step())
  s1, m1 = step(state, batch)
  s2, m2 = step(state, batch)
  assert int(s1.step) == 1 and int(state.step) == 0  # the input state is untouched
  for a, b in zip(jax.tree.leaves((s1, m1)), jax.tree.leaves((s2, m2))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert set(m1) >= {"d_loss", "g_loss", "d_real", "d_fake", "wasserstein"}
  assert_dcgan_generator_moved(state.generator.params, s1.generator.params)
  # Batch statistics were updated by the training-mode passes.
  assert any(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                                          state.discriminator.collections,
                                          s1.discriminator.collections)))


def test_ema_follows_its_formula():
  gan, state, batch = build("dcgan", ema_decay=0.9, ema_start_step=1)
  step = jax.jit(gan.train_step())
  s1, _ = step(state, batch)  # step 0 < ema_start_step: the EMA copies the weights
  jax.tree.map(lambda e, p: np.testing.assert_array_equal(e, p), s1.ema_params,
               s1.generator.params)
  s2, _ = step(s1, batch)
  jax.tree.map(lambda e, old, new: np.testing.assert_allclose(e, 0.9 * old + 0.1 * new,
                                                              rtol=1e-6, atol=1e-7),
               s2.ema_params, s1.ema_params, s2.generator.params)
  # Sampling uses the EMA weights when the state has them.
  assert s2.sampling_variables["params"] is s2.ema_params


def test_weight_clipping_bounds_the_critic_after_each_update():
  gan, state, batch = build("wgan", **{"d_optimizer.learning_rate": 0.5, "n_critic": 2})
  new_state, _ = jax.jit(gan.train_step())(state, batch)
  leaves = np.concatenate([np.ravel(x) for x in jax.tree.leaves(new_state.discriminator.params)])
  assert np.abs(leaves).max() <= np.float32(0.01)
  assert np.mean(np.abs(leaves) == np.float32(0.01)) > 0.25  # the large steps hit the bound


def test_scanned_critic_updates_match_the_unrolled_ones():
  # n_critic = 3 with G's batch statistics moving through the critic updates' G passes. SGD:
  # RMSProp's first step is about lr * sign(g), which turns the rounding differences of XLA's
  # kernels inside and outside a loop into sign flips of near-zero gradients.
  sgd = {"g_optimizer.name": "sgd", "d_optimizer.name": "sgd",
         "g_optimizer.learning_rate": 0.1, "d_optimizer.learning_rate": 0.1}
  states, metrics = [], []
  for unroll in (True, False):
    gan, state, batch = build("wgan", n_critic=3, unroll_critic=unroll, **sgd)
    new_state, m = jax.jit(gan.train_step())(state, batch)
    states.append(new_state)
    metrics.append(m)
  assert any(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                                          state.generator.collections,
                                          states[1].generator.collections)))
  for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
  for name in metrics[0]:
    np.testing.assert_allclose(metrics[0][name], metrics[1][name], rtol=2e-5, atol=2e-6,
                               err_msg=name)


def test_the_critic_loop_is_a_scan_only_on_onednn_convolutions():
  config = tiny_config("wgan", n_critic=5)
  assert config.unroll_critic is None  # shipped: chosen by the convolution backend
  with_onednn = onednn.available() and jax.default_backend() == "cpu"
  assert experiment.critic_unrolled(config, "auto") is not with_onednn
  assert experiment.critic_unrolled(config, "xla")  # XLA's CPU convolutions: straight-line
  assert experiment.critic_unrolled(tiny_config("wgan", n_critic=5, dtype="bfloat16"))
  assert experiment.critic_unrolled(tiny_config("wgan", n_critic=1))
  assert not experiment.critic_unrolled(tiny_config("wgan", unroll_critic=False), "xla")
  assert experiment.critic_unrolled(tiny_config("wgan", unroll_critic=True), "auto")


def test_sampling_is_inference_mode_and_in_range():
  gan, state, _ = build("dcgan")
  sample = jax.jit(gan.sample_fn())
  z = jax.random.normal(jax.random.PRNGKey(1), (5, gan.generator.z_dim))
  images = sample(state.sampling_variables, z, None)
  assert images.shape == (5, 8, 8, 3)
  assert float(jnp.abs(images).max()) <= 1.0
  # Inference mode: an image does not depend on the rest of its batch.
  np.testing.assert_allclose(sample(state.sampling_variables, z[:2], None), images[:2],
                             rtol=1e-5, atol=1e-6)


def test_step_rejects_a_batch_without_n_critic_batches():
  gan, state, batch = build("wgan_gp")
  with pytest.raises(ValueError, match="n_critic=5"):
    gan.train_step()(state, jax.tree.map(lambda x: x[:2], batch))


def _sharded_run(devices: int) -> dict:
  env = subprocess_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  out = subprocess.run([sys.executable, "-m", "tests.sharded_step", "dcgan", "wgan_gp"],
                       cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_one_and_four_devices_give_the_same_losses():
  """Also: the trainers' convolution backend is oneDNN on one CPU device (when the extension
  is built and not switched off) and XLA's on a mesh of four, in the compiled step itself."""
  one, four = _sharded_run(1), _sharded_run(4)
  assert one["devices"] == 1 and four["devices"] == 4
  for config in ("dcgan", "wgan_gp"):
    assert four[config].pop("conv_backend") == ["xla"]
    assert four[config].pop("calls_onednn") == [False]
    assert one[config].pop("conv_backend") == ["auto"]
    assert one[config].pop("calls_onednn") == [onednn.available()]
  for config in ("dcgan", "wgan_gp"):  # batch norm across devices; gradient penalty
    for key, values in one[config].items():
      # Losses and D outputs to 1e-5; the sum of |params| after two Adam updates to 1e-4 (Adam
      # divides by sqrt(v), which amplifies float32 reduction-order differences).
      rtol = 1e-4 if key == "param_checksum" else 1e-5
      np.testing.assert_allclose(four[config][key], values, rtol=rtol, atol=1e-5,
                                 err_msg=f"{config} {key}")


def test_backend_for_a_mesh_of_cpu_devices():
  """`backend_for`: XLA's convolutions on several CPU devices, the default on one."""
  cpu = jax.devices("cpu")[0]
  mesh_of = lambda n: types.SimpleNamespace(devices=np.asarray([cpu] * n))  # what it reads
  assert conv.backend_for(mesh_of(1)) == "auto"
  assert conv.backend_for(mesh_of(4)) == "xla"
  with pytest.raises(ValueError, match="unknown convolution backend 'cudnn'"):
    conv.check_backend("cudnn")
