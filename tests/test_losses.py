"""Objectives against values computed by hand with the math module."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.gan import losses
from ganjax.errors import ConfigError

REAL = [1.0, -2.0, 0.5]
FAKE = [0.5, 3.0, -1.0]


def softplus(x):
  return math.log1p(math.exp(x))


def mean(xs):
  return sum(xs) / len(xs)


def sigmoid(x):
  return 1.0 / (1.0 + math.exp(-x))


EXPECTED = {
    # -E[log D(x)] - E[log(1 - D(G(z)))], D = sigmoid
    "nonsaturating": (
        mean([-math.log(sigmoid(r)) for r in REAL]) +
        mean([-math.log(1 - sigmoid(f)) for f in FAKE]),
        mean([-math.log(sigmoid(f)) for f in FAKE])),
    "minimax": (
        mean([-math.log(sigmoid(r)) for r in REAL]) +
        mean([-math.log(1 - sigmoid(f)) for f in FAKE]),
        mean([math.log(1 - sigmoid(f)) for f in FAKE])),
    "wasserstein": (mean(FAKE) - mean(REAL), -mean(FAKE)),
    "hinge": (mean([max(0.0, 1 - r) for r in REAL]) + mean([max(0.0, 1 + f) for f in FAKE]),
              -mean(FAKE)),
    "least_squares": (0.5 * mean([(r - 1) ** 2 for r in REAL]) + 0.5 * mean([f**2 for f in FAKE]),
                      0.5 * mean([(f - 1) ** 2 for f in FAKE])),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_objective_matches_hand_computed_values(name):
  objective = losses.get_objective(name)
  d_loss = objective.discriminator_loss(jnp.array(REAL), jnp.array(FAKE))
  g_loss = objective.generator_loss(jnp.array(FAKE))
  np.testing.assert_allclose(float(d_loss), EXPECTED[name][0], rtol=1e-6)
  np.testing.assert_allclose(float(g_loss), EXPECTED[name][1], rtol=1e-6)
  assert d_loss.dtype == jnp.float32 and d_loss.shape == ()


def test_every_registered_objective_is_tested():
  assert set(losses.OBJECTIVES) == set(EXPECTED)


def test_softplus_form_is_stable_for_large_logits():
  # log(sigmoid(-100)) underflows naively; the softplus form gives the exact value 100.
  d_loss = losses.OBJECTIVES["nonsaturating"].discriminator_loss(jnp.array([-100.0]),
                                                                 jnp.array([100.0]))
  np.testing.assert_allclose(float(d_loss), 200.0, rtol=1e-6)


def test_classification_loss_hand_computed():
  logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
  labels = jnp.array([0, 2])

  def ce(row, y):
    return -(row[y] - math.log(sum(math.exp(v) for v in row)))

  expected = mean([ce([2.0, 0.0, -1.0], 0), ce([0.0, 1.0, 0.0], 2)])
  np.testing.assert_allclose(float(losses.classification_loss(logits, labels)), expected,
                             rtol=1e-6)


def test_unknown_objective_names_the_choices():
  with pytest.raises(ConfigError, match="unknown loss 'wgan'.*hinge"):
    losses.get_objective("wgan")


def test_one_sided_label_smoothing_matches_the_cross_entropy_with_target_1_minus_s():
  real = jnp.array([2.0, -1.0, 0.5])
  fake = jnp.array([-0.3, 1.2])
  s = 0.1
  sig = lambda x: 1 / (1 + np.exp(-np.asarray(x, np.float64)))
  expected = (np.mean(-(1 - s) * np.log(sig(real)) - s * np.log(1 - sig(real))) +
              np.mean(-np.log(1 - sig(fake))))
  objective = losses.get_objective("nonsaturating", label_smoothing=s)
  assert float(objective.discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-5)
  # The generator's loss and the unsmoothed loss are unchanged.
  assert objective.generator_loss is losses.OBJECTIVES["nonsaturating"].generator_loss
  assert losses.get_objective("nonsaturating", 0.0) is losses.OBJECTIVES["nonsaturating"]


def test_label_smoothing_only_for_cross_entropy_losses():
  with pytest.raises(ConfigError, match="label_smoothing applies to the cross-entropy"):
    losses.get_objective("hinge", label_smoothing=0.1)
  with pytest.raises(ConfigError, match=r"must be in \[0, 1\)"):
    losses.get_objective("minimax", label_smoothing=1.5)
