"""`ganjax.ops.batch_norm` against float64 sums, flax's BatchNorm and jax.grad of the formula."""

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.ops import batch_norm, onednn

# The extension's sums where it is built and not switched off (GANJAX_ONEDNN=0 runs the rest).
EXTENSION = pytest.param(True, id="extension", marks=pytest.mark.skipif(
    not onednn.available(), reason=f"extension not available: {onednn.status()}"))
BOTH = [EXTENSION, pytest.param(False, id="xla")]
needs_extension = pytest.mark.skipif(not onednn.available(),
                                     reason=f"extension not available: {onednn.status()}")


def _random(shape, seed, offset=0.0):
  return jnp.asarray(np.random.RandomState(seed).randn(*shape).astype(np.float32) * 2 + offset)


@needs_extension
@pytest.mark.parametrize("shape", [(3, 7, 5, 13), (16, 32, 32, 20), (1, 64), (5, 0, 3)],
                         ids=["odd", "two_chunks", "rank2", "no_rows"])
def test_the_extensions_channel_sums_are_float64_sums(shape):
  a, b = _random(shape, 0, 0.5), _random(shape, 1, -1.0)
  out = jax.jit(onednn.channel_sums)(a, b)
  a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
  axes = tuple(range(len(shape) - 1))
  expected = np.stack([a64.sum(axes), (a64 * b64).sum(axes)])
  assert out.shape == (2, shape[-1]) and out.dtype == jnp.float32
  # float32 blocks of 64 rows, float64 totals: the float32 rounding of the exact sums.
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


@needs_extension
@pytest.mark.parametrize("members", [2, 3])
def test_vmapped_channel_sums_are_each_members(members):
  a, b = _random((members, 6, 9, 9, 16), 2), _random((members, 6, 9, 9, 16), 3)
  out = jax.jit(jax.vmap(onednn.channel_sums))(a, b)
  for m in range(members):
    np.testing.assert_array_equal(out[m], onednn.channel_sums(a[m], b[m]))


@needs_extension
def test_channel_sums_refuses_operands_of_two_shapes():
  with pytest.raises(ValueError, match="one shape"):
    onednn.channel_sums(jnp.zeros((4, 3)), jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match="float32"):
    onednn.channel_sums(jnp.zeros((4, 3), jnp.bfloat16), jnp.zeros((4, 3), jnp.bfloat16))


def test_batch_norm_on_the_extension_refuses_without_it():
  with onednn.disabled(), pytest.raises(RuntimeError, match="not available"):
    batch_norm.batch_norm(jnp.zeros((4, 3)), jnp.ones(3), jnp.zeros(3), epsilon=1e-5)


def _formula(x, scale, bias, eps=1e-5):
  """The module docstring's forward pass, differentiated by jax.grad (the reference)."""
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axes)
  var = jnp.maximum(jnp.mean(x * x, axes) - mean * mean, 0.0)
  return (x - mean) * (scale * jax.lax.rsqrt(var + eps)) + bias, mean, var


def _case():
  x = _random((8, 6, 6, 24), 4, 0.7)
  scale = jnp.asarray(np.random.RandomState(5).rand(24).astype(np.float32) + 0.5)
  bias = _random((24,), 6)
  gy, gm, gv = _random(x.shape, 7), _random((24,), 8), _random((24,), 9)
  return x, scale, bias, (gy, gm, gv)


def _loss(fn, cotangents):
  gy, gm, gv = cotangents
  def loss(x, scale, bias):
    y, mean, var = fn(x, scale, bias)
    return jnp.sum(y * gy) + jnp.sum(mean * gm) + jnp.sum(var * gv)
  return loss


@pytest.mark.parametrize("use_extension", BOTH)
def test_batch_norm_is_flaxs_and_its_gradient_the_formulas(use_extension):
  x, scale, bias, cotangents = _case()
  ours = lambda *a: batch_norm.batch_norm(*a, epsilon=1e-5, use_extension=use_extension)
  y, mean, var = jax.jit(ours)(x, scale, bias)
  # flax's BatchNorm: its output, and its batch statistics (momentum 0: the running averages
  # become the batch's).
  flax_bn = flax.linen.BatchNorm(use_running_average=False, momentum=0.0, epsilon=1e-5)
  params = {"params": {"scale": scale, "bias": bias}}
  stats = {"batch_stats": {"mean": jnp.zeros(24), "var": jnp.ones(24)}}
  y_flax, updates = flax_bn.apply({**params, **stats}, x, mutable=["batch_stats"])
  np.testing.assert_allclose(y, y_flax, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(mean, updates["batch_stats"]["mean"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(var, updates["batch_stats"]["var"], rtol=1e-5, atol=1e-6)
  # The gradient for cotangents of all three outputs.
  grads = jax.jit(jax.grad(_loss(ours, cotangents), (0, 1, 2)))(x, scale, bias)
  expected = jax.grad(_loss(_formula, cotangents), (0, 1, 2))(x, scale, bias)
  for g, e in zip(grads, expected):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * float(jnp.abs(e).max()))


@pytest.mark.parametrize("use_extension", BOTH)
def test_the_gradient_of_the_input_gradient_is_the_formulas(use_extension):
  # Reverse over reverse, as a gradient penalty through a batch-normalized critic takes it.
  x, scale, bias, cotangents = _case()
  ours = lambda *a: batch_norm.batch_norm(*a, epsilon=1e-5, use_extension=use_extension)

  def penalty(fn):
    return lambda x, scale: jnp.sum(jax.grad(_loss(fn, cotangents))(x, scale, bias) ** 2)

  grads = jax.jit(jax.grad(penalty(ours), (0, 1)))(x, scale)
  expected = jax.grad(penalty(_formula), (0, 1))(x, scale)
  for g, e in zip(grads, expected):
    np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-3 * float(jnp.abs(e).max()))


@needs_extension
def test_a_vmapped_batch_norm_normalizes_each_member_by_its_own_statistics():
  xs = jnp.stack([_random((4, 5, 5, 8), 10, 0.5), _random((4, 5, 5, 8), 11, -2.0) * 3])
  scales, biases = jnp.ones((2, 8)) * jnp.array([[1.0], [0.5]]), jnp.zeros((2, 8))
  ours = jax.jit(jax.vmap(lambda *a: batch_norm.batch_norm(*a, epsilon=1e-5)))
  for got, want in zip(ours(xs, scales, biases), jax.vmap(_formula)(xs, scales, biases)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
