"""Gradient views of a tiny trained classifier: input gradients, the signed-gradient step,
class-logit and channel ascent, and intermediate convolution outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import data
from ganjax.classifier import step as classifier
from ganjax.analysis import gradients
from ganjax.errors import ConfigError
from ganjax.models import critic, dcgan

NET = critic.Critic(width=8, num_classes=10)
TRAIN_STEPS = 40


@pytest.fixture(scope="module")
def trained():
  """The critic trained TRAIN_STEPS Adam steps on 8x8 synthetic data, and a held-out batch."""
  train = data.load_dataset("synthetic:512", "train", image_size=8)
  test = data.load_dataset("synthetic:64", "test", image_size=8)
  tx = optax.adam(3e-3)
  state = jax.jit(lambda r: classifier.create_classifier_state(r, NET, tx, (8, 8, 3)))(
      jax.random.PRNGKey(0))
  step = jax.jit(classifier.make_classifier_step(NET, tx))
  for t in range(TRAIN_STEPS):
    state, _ = step(state, data.training_batch(train, seed=0, step=t, batch_size=32))
  images = data.to_float(test.images)
  return state.model.variables, jnp.asarray(images), jnp.asarray(test.labels)


def logits_fn():
  return classifier.make_logits_fn(NET)


def accuracy(variables, images, labels):
  return float(np.mean(np.argmax(logits_fn()(variables, images), -1) == np.asarray(labels)))


def test_signed_gradient_step_lowers_accuracy(trained):
  variables, images, labels = trained
  before = accuracy(variables, images, labels)
  assert before > 0.5  # the few steps taught it something
  grads = jax.jit(gradients.class_loss_gradient, static_argnums=0)(logits_fn(), variables,
                                                                   images, labels)
  moved = gradients.signed_gradient_step(images, grads, 0.1)
  np.testing.assert_allclose(np.abs(np.asarray(moved - images))[np.abs(images) < 0.85], 0.1,
                             rtol=1e-5)
  assert float(jnp.max(jnp.abs(moved))) <= 1.0
  after = accuracy(variables, moved, labels)
  assert after < before - 0.2, (before, after)


def test_class_loss_gradient_matches_finite_differences(trained):
  variables, images, labels = trained
  x, y = images[:4], labels[:4]
  grads = np.asarray(gradients.class_loss_gradient(logits_fn(), variables, x, y))
  loss = lambda z: float(optax.softmax_cross_entropy_with_integer_labels(
      logits_fn()(variables, z), y).mean())
  h = 1e-2
  for index in [(0, 3, 4, 0), (2, 7, 1, 2), (3, 0, 0, 1)]:
    e = np.zeros(x.shape, np.float32)
    e[index] = h
    fd = (loss(x + e) - loss(x - e)) / (2 * h)
    np.testing.assert_allclose(grads[index], fd, rtol=0.05, atol=2e-4)


def test_gradient_ascent_raises_the_target_class_logit(trained):
  variables, images, _ = trained
  start = jnp.repeat(jnp.mean(images, axis=0, keepdims=True), 10, axis=0)
  targets = jnp.arange(10, dtype=jnp.int32)
  ascend = jax.jit(gradients.gradient_ascent, static_argnums=0, static_argnames="num_steps")
  out, before, after = ascend(gradients.class_logit_objective(logits_fn()), variables, start,
                              targets, step_size=0.05, l2_penalty=1e-3, num_steps=30)
  start_logits = np.asarray(logits_fn()(variables, start))
  np.testing.assert_allclose(before, start_logits[np.arange(10), np.arange(10)], rtol=1e-5)
  end_logits = np.asarray(logits_fn()(variables, out))
  np.testing.assert_allclose(after, end_logits[np.arange(10), np.arange(10)], rtol=1e-4,
                             atol=1e-5)
  assert np.all(after > before) and np.mean(after - before) > 0.5, (before, after)
  assert float(jnp.max(jnp.abs(out))) <= 1.0
  assert np.mean(end_logits.argmax(-1) == np.arange(10)) >= 0.8


def test_conv_outputs_in_call_order_and_equal_to_a_reference_convolution(trained):
  variables, images, _ = trained
  paths = gradients.conv_layer_paths(NET, variables, (8, 8, 3))
  assert paths == [(f"conv{i}",) for i in range(1, 9)]
  features_fn, path = gradients.conv_features_fn(NET, variables, (8, 8, 3), 1)
  assert path == ("conv1",)
  out = np.asarray(features_fn(variables, images[:2]))
  p = variables["params"]["conv1"]
  x = np.pad(np.asarray(images[:2], np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  kernel = np.asarray(p["kernel"], np.float64)  # [3, 3, 3, 8]
  reference = sum(np.einsum("bhwc,cf->bhwf", x[:, i:i + 8, j:j + 8], kernel[i, j])
                  for i in range(3) for j in range(3)) + np.asarray(p["bias"])
  np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-5)
  with pytest.raises(ConfigError, match="has 8 convolutions"):
    gradients.conv_features_fn(NET, variables, (8, 8, 3), 9)
  # The DCGAN discriminator at 8x8 (one DownConv block, then the output convolution).
  d = dcgan.Discriminator(width=4, image_size=8, num_classes=10, condition="ac")
  d_vars = d.init(jax.random.PRNGKey(0), images[:2], None, train=False)
  assert gradients.conv_layer_paths(d, d_vars, (8, 8, 3)) == [
      ("conv0a",), ("conv0b",), ("conv_out",)]


def test_channel_ascent_raises_the_channel_mean(trained):
  variables, images, _ = trained
  features_fn, _ = gradients.conv_features_fn(NET, variables, (8, 8, 3), 4)
  channels = jnp.arange(4, dtype=jnp.int32)
  start = jnp.repeat(jnp.mean(images, axis=0, keepdims=True), 4, axis=0)
  objective = gradients.channel_mean_objective(features_fn)
  out, before, after = jax.jit(gradients.gradient_ascent, static_argnums=0,
                               static_argnames="num_steps")(
      objective, variables, start, channels, step_size=0.05, l2_penalty=1e-3, num_steps=20)
  means = np.asarray(features_fn(variables, out)).mean(axis=(1, 2))[np.arange(4), np.arange(4)]
  np.testing.assert_allclose(after, means, rtol=1e-4, atol=1e-5)
  assert np.all(after > before)
