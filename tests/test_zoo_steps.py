"""The ACGAN terms of the training step against a direct computation."""

import jax
import numpy as np
import pytest

from ganjax import data
from ganjax.gan import build as experiment, steps
from tests.tiny import tiny_config


@pytest.fixture(scope="module")
def acgan():
  config = tiny_config("acgan", n_critic=1)
  dataset = data.load_dataset(config.dataset, "train", config.image_size)
  gan = experiment.build_gan(config, experiment.DataSpec(dataset.image_shape,
                                                         dataset.class_names))
  state = jax.jit(gan.init)(jax.random.PRNGKey(0))
  batch = data.training_batch(dataset, seed=0, step=0, batch_size=config.batch_size, n_critic=1)
  return gan, state, batch


def _d_class_loss(gan, state, batch, on_fake):
  options = gan.options.__class__(**{**gan.options.__dict__, "aux_classifier_on_fake": on_fake})
  step = steps.make_train_step(gan.generator, gan.discriminator, gan.g_tx, gan.d_tx, options)
  return jax.jit(step)(state, batch)[1]


def test_discriminator_class_loss_on_real_only_or_real_and_fake(acgan):
  gan, state, batch = acgan
  real_only = _d_class_loss(gan, state, batch, on_fake=False)
  both = _d_class_loss(gan, state, batch, on_fake=True)
  # The real term: D (before its update, training-mode batch norm) on the real batch.
  out, _ = steps.apply_model(gan.discriminator, state.discriminator.params,
                             state.discriminator.collections, batch["image"][0],
                             batch["label"][0], train=True)
  logits = np.asarray(out["class_logits"], np.float64)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  expected_real = -np.mean(log_probs[np.arange(len(logits)), np.asarray(batch["label"][0])])
  assert float(real_only["d_class_loss"]) == pytest.approx(expected_real, rel=1e-4)
  # Odena et al.: plus the cross-entropy on generated images with their sampled labels.
  fake_term = float(both["d_class_loss"]) - expected_real
  assert fake_term > 0.1
  # aux_classifier_weight = 1 in the config: the class loss adds to the adversarial loss.
  assert float(both["d_loss"]) == pytest.approx(
      float(both["d_adv_loss"]) + float(both["d_class_loss"]), rel=1e-5)
  assert float(both["g_loss"]) == pytest.approx(
      float(both["g_adv_loss"]) + float(both["g_class_loss"]), rel=1e-5)
