"""Learning-rate schedules against hand-computed values, through the optimizers they drive."""

import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.gan import optim
from ganjax.errors import ConfigError


def _rates(section, total, steps):
  """The learning rate each update uses: SGD on the loss p (gradient 1) moves p by -lr."""
  tx = optim.make_optimizer(section, total)
  params = jnp.zeros(())
  state = tx.init(params)
  rates = []
  for _ in range(max(steps) + 1):
    updates, state = tx.update(jnp.ones(()), state, params)
    rates.append(-float(updates))
  return [rates[s] for s in steps]


def test_linear_decay_to_zero_from_the_start():
  # SNGAN / WGAN-GP ResNet: lr_t = lr * (1 - t / T).
  got = _rates(dict(name="sgd", learning_rate=2e-4, schedule="linear"), 100, [0, 1, 50, 99])
  np.testing.assert_allclose(got, [2e-4, 2e-4 * 0.99, 1e-4, 2e-6], rtol=1e-5)


def test_linear_decay_after_a_constant_phase_to_a_floor():
  section = dict(name="sgd", learning_rate=1.0, schedule="linear", decay_start=0.5,
                 end_factor=0.2)
  got = _rates(section, 100, [0, 50, 75, 100, 120])
  np.testing.assert_allclose(got, [1.0, 1.0, 0.6, 0.2, 0.2], rtol=1e-6)


def test_step_decay():
  section = dict(name="sgd", learning_rate=0.1, schedule="step", decay_every=0.25,
                 decay_factor=0.5)
  got = _rates(section, 40, [0, 9, 10, 19, 20, 35])
  np.testing.assert_allclose(got, [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125], rtol=1e-6)


def test_adam_with_a_schedule_scales_its_first_step():
  # Adam's first update is lr * g / (|g| + eps) ~ lr: the schedule's value at step 0.
  section = dict(name="adam", learning_rate=1e-3, schedule="linear", b1=0.0, b2=0.9)
  assert _rates(section, 10, [0])[0] == pytest.approx(1e-3, rel=1e-4)


def test_unknown_schedule_option():
  with pytest.raises(ConfigError, match="is not an option"):
    optim.make_optimizer(dict(name="adam", learning_rate=1e-3, schedule="linear",
                              decay_every=0.5), 10)
