"""Gradient penalty and R1 against central finite differences (float64); weight clipping."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax.gan import regularizers
from ganjax.errors import ConfigError


class TinyCritic(nn.Module):
  """A small non-linear per-example critic on [B, 4, 4, 2] images."""

  @nn.compact
  def __call__(self, x):
    h = jnp.tanh(nn.Conv(3, (3, 3), param_dtype=jnp.float64, dtype=jnp.float64)(x))
    h = h.reshape(h.shape[0], -1)
    return nn.Dense(1, param_dtype=jnp.float64, dtype=jnp.float64)(jnp.sin(h))[:, 0]


def _setup():
  key = jax.random.PRNGKey(0)
  real = jax.random.normal(jax.random.fold_in(key, 1), (3, 4, 4, 2), jnp.float64)
  fake = jax.random.normal(jax.random.fold_in(key, 2), (3, 4, 4, 2), jnp.float64)
  critic = TinyCritic()
  params = critic.init(jax.random.fold_in(key, 3), real)
  return critic, params, real, fake, jax.random.fold_in(key, 4)


def _fd_input_grad(f, x, eps=1e-6):
  """Central differences of scalar f at x (float64 numpy)."""
  x = np.asarray(x, np.float64)
  grad = np.zeros_like(x)
  for idx in np.ndindex(*x.shape):
    up, down = x.copy(), x.copy()
    up[idx] += eps
    down[idx] -= eps
    grad[idx] = (f(up) - f(down)) / (2 * eps)
  return grad


def test_gradient_penalty_matches_finite_differences():
  with jax.enable_x64(True):
    critic, params, real, fake, rng = _setup()
    fn = lambda x: critic.apply(params, x)
    gp = float(regularizers.gradient_penalty(fn, real, fake, rng))
    x_hat = np.asarray(regularizers.interpolates(real, fake, rng))
    norms = []
    for i in range(x_hat.shape[0]):  # examples are independent: d D(x_i) / d x_i
      g = _fd_input_grad(lambda xi: float(fn(jnp.asarray(xi)[None])[0]), x_hat[i])
      norms.append(np.sqrt(np.sum(g**2)))
    expected = np.mean((np.array(norms) - 1.0) ** 2)
    np.testing.assert_allclose(gp, expected, rtol=1e-6)
    assert gp > 1e-3  # the check is not vacuous


def test_gradient_penalty_parameter_gradient_matches_finite_differences():
  """The double backward: d GP / d theta along a random direction."""
  with jax.enable_x64(True):
    critic, params, real, fake, rng = _setup()
    gp_of = lambda p: regularizers.gradient_penalty(lambda x: critic.apply(p, x), real, fake, rng)
    grads = jax.grad(gp_of)(params)
    direction = jax.tree.map(
        lambda p: jax.random.normal(jax.random.PRNGKey(7), p.shape, p.dtype), params)
    analytic = sum(float(jnp.vdot(g, d)) for g, d in
                   zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
    eps = 1e-6
    shifted = lambda s: jax.tree.map(lambda p, d: p + s * d, params, direction)
    numeric = (float(gp_of(shifted(eps))) - float(gp_of(shifted(-eps)))) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5)


def test_interpolates_lie_between_real_and_fake():
  real, fake = jnp.zeros((64, 2, 2, 1)), jnp.ones((64, 2, 2, 1))
  x_hat = regularizers.interpolates(real, fake, jax.random.PRNGKey(0))
  per_example = np.asarray(x_hat).reshape(64, -1)
  assert np.all(per_example == per_example[:, :1])  # one eps per example
  assert 0.0 <= per_example.min() and per_example.max() <= 1.0
  assert per_example.std() > 0.2  # eps is spread over [0, 1]


def test_r1_penalty_matches_finite_differences():
  with jax.enable_x64(True):
    critic, params, real, _, _ = _setup()
    fn = lambda x: critic.apply(params, x)
    r1 = float(regularizers.r1_penalty(fn, real))
    sq = [np.sum(_fd_input_grad(lambda xi: float(fn(jnp.asarray(xi)[None])[0]),
                                np.asarray(real[i]))**2) for i in range(real.shape[0])]
    np.testing.assert_allclose(r1, np.mean(sq), rtol=1e-6)


def test_weight_clipping_bounds_every_parameter_after_an_update():
  params = {"conv": {"kernel": jnp.linspace(-1, 1, 12).reshape(3, 4), "bias": jnp.zeros(4)},
            "scale": jnp.ones(())}
  project = regularizers.weight_clipping(0.01)
  tx = optax.rmsprop(5e-2)
  grads = jax.tree.map(lambda p: jnp.full_like(p, -3.0), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  clipped = project(optax.apply_updates(params, updates))
  leaves = np.concatenate([np.ravel(x) for x in jax.tree.leaves(clipped)])
  assert np.all(np.abs(leaves) <= 0.01)
  assert np.sum(np.abs(leaves) == 0.01) >= 10  # the projection acted
  assert jax.tree.structure(clipped) == jax.tree.structure(params)


def test_weight_clipping_rejects_a_nonpositive_bound():
  with pytest.raises(ConfigError, match="positive clip value"):
    regularizers.weight_clipping(0.0)
