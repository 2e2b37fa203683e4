"""The classifier step and evaluation against numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import data
from ganjax.classifier import step as classifier
from ganjax.models import critic

NET = critic.Critic(width=4, num_classes=10)


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture(scope="module")
def setup():
  dataset = data.load_dataset("synthetic:64", "train", image_size=8)
  batch = data.training_batch(dataset, seed=0, step=0, batch_size=16)  # [1, 16, ...]
  tx = optax.sgd(0.1)
  state = jax.jit(lambda r: classifier.create_classifier_state(r, NET, tx, (8, 8, 3)))(
      jax.random.PRNGKey(0))
  step = jax.jit(classifier.make_classifier_step(NET, tx))
  return state, batch, step


def test_step_loss_is_the_cross_entropy_and_sgd_moves_down_its_gradient(setup):
  state, batch, step = setup
  new, metrics = step(state, batch)
  images, labels = batch["image"][0], batch["label"][0]
  # Train mode and inference mode agree for a layer-norm network without dropout.
  logits = np.asarray(NET.apply(state.model.variables, images, None, train=False)
                      ["class_logits"])
  expected = -np.mean(_log_softmax(logits.astype(np.float64))[np.arange(16), labels])
  np.testing.assert_allclose(float(metrics["loss"]), expected, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["accuracy"]),
                             np.mean(logits.argmax(-1) == labels), atol=1e-7)
  assert int(new.step) == 1 and int(state.step) == 0
  # One SGD step of rate 0.1 along a central finite difference of the loss in one weight.
  kernel = np.asarray(state.model.params["classifier"]["kernel"])

  def loss_with(w):
    params = jax.tree.map(lambda x: x, state.model.params)
    params["classifier"] = {"kernel": jnp.asarray(w)}
    out = NET.apply({"params": params}, images, None, train=False)["class_logits"]
    return float(optax.softmax_cross_entropy_with_integer_labels(out, labels).mean())

  h = 1e-3
  bumped, dropped = kernel.copy(), kernel.copy()
  bumped[0, 0] += h
  dropped[0, 0] -= h
  fd_grad = (loss_with(bumped) - loss_with(dropped)) / (2 * h)
  moved = float(new.model.params["classifier"]["kernel"][0, 0])
  np.testing.assert_allclose(moved, kernel[0, 0] - 0.1 * fd_grad, rtol=1e-3, atol=1e-5)


def test_eval_step_counts_only_unmasked_examples(setup):
  state, batch, _ = setup
  images, labels = batch["image"][0], batch["label"][0]
  mask = np.arange(16) < 11
  out = jax.jit(classifier.make_eval_step(NET))(state.model.variables, images, labels, mask)
  logits = np.asarray(NET.apply(state.model.variables, images, None, train=False)
                      ["class_logits"], np.float64)
  xent = -_log_softmax(logits)[np.arange(16), labels]
  assert float(out["count"]) == 11
  assert float(out["correct"]) == np.sum((logits.argmax(-1) == labels)[:11])
  np.testing.assert_allclose(float(out["loss_sum"]), xent[:11].sum(), rtol=1e-5)
