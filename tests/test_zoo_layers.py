"""Self-attention, conditional batch norm, discriminator heads, the ACGAN critic: against
direct numpy computations of their formulas."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.models import attention, conditioning, critic, layers
from ganjax.ops import onednn


def _set(tree, path, value):
  tree = flax.core.unfreeze(tree)
  node = tree
  for part in path[:-1]:
    node = node[part]
  node[path[-1]] = value
  return tree


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _maxpool2(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@pytest.mark.parametrize("pool_keys", [True, False])
def test_self_attention_matches_numpy(pool_keys):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 4, 6, 16)).astype(np.float32)
  module = attention.SelfAttention(pool_keys=pool_keys)
  params = module.init(jax.random.PRNGKey(0), jnp.asarray(x))["params"]
  params = _set(params, ("gamma",), jnp.float32(0.7))
  y = np.asarray(module.apply({"params": params}, jnp.asarray(x)))

  k = {name: np.asarray(params[name]["kernel"])[0, 0] for name in ("theta", "phi", "g", "out")}
  theta = (x @ k["theta"]).reshape(2, 24, 2)
  phi, g = x @ k["phi"], x @ k["g"]
  if pool_keys:
    phi, g = _maxpool2(phi), _maxpool2(g)
  phi, g = phi.reshape(2, -1, 2), g.reshape(2, -1, 8)
  beta = _softmax(np.einsum("bnc,bmc->bnm", theta, phi))
  assert beta.shape == (2, 24, 6 if pool_keys else 24)
  o = (np.einsum("bnm,bmc->bnc", beta, g) @ k["out"]).reshape(x.shape)
  np.testing.assert_allclose(y, x + 0.7 * o, rtol=1e-5, atol=1e-5)


def test_self_attention_starts_as_the_identity():
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 8))
  module = attention.SelfAttention(spectral_norm=True)
  variables = module.init(jax.random.PRNGKey(0), x)
  assert float(variables["params"]["gamma"]) == 0.0
  np.testing.assert_array_equal(np.asarray(module.apply(variables, x)), np.asarray(x))


def test_conditional_batch_norm_uses_per_class_gain_and_bias():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(6, 3, 3, 4)).astype(np.float32)
  labels = np.array([0, 1, 2, 1, 0, 2])
  module = conditioning.ConditionalBatchNorm(num_classes=3)
  variables = module.init(jax.random.PRNGKey(0), jnp.asarray(x), jnp.asarray(labels),
                          train=True)
  y, _ = module.apply(variables, jnp.asarray(x), jnp.asarray(labels), train=True,
                      mutable=["batch_stats"])
  gain = np.asarray(variables["params"]["gain"]["embedding"])[labels]
  bias = np.asarray(variables["params"]["bias"]["embedding"])[labels]
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  expected = ((x - mean) / np.sqrt(var + conditioning.BN_EPS) * (1 + gain[:, None, None]) +
              bias[:, None, None])
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-4, atol=1e-5)


def test_linear_conditional_batch_norm():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(4, 2, 2, 3)).astype(np.float32)
  cond = rng.normal(size=(4, 5)).astype(np.float32)
  module = conditioning.LinearConditionalBatchNorm(spectral_norm=False)
  variables = module.init(jax.random.PRNGKey(0), jnp.asarray(x), jnp.asarray(cond), train=True)
  y, _ = module.apply(variables, jnp.asarray(x), jnp.asarray(cond), train=True,
                      mutable=["batch_stats"])
  w_g = np.asarray(variables["params"]["gain"]["kernel"])
  w_b = np.asarray(variables["params"]["bias"]["kernel"])
  normed = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + conditioning.BN_EPS)
  expected = normed * (1 + cond @ w_g)[:, None, None] + (cond @ w_b)[:, None, None]
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-4, atol=1e-5)


class _Head(flax.linen.Module):
  condition: str
  num_classes: int

  @flax.linen.compact
  def __call__(self, h, labels):
    return conditioning.discriminator_head(h, labels, condition=self.condition,
                                           num_classes=self.num_classes)


@pytest.mark.parametrize("condition", ["projection", "ac", "none"])
def test_discriminator_heads(condition):
  rng = np.random.default_rng(3)
  h = rng.normal(size=(5, 6)).astype(np.float32)
  labels = np.array([0, 3, 2, 3, 1])
  module = _Head(condition, 4)
  params = module.init(jax.random.PRNGKey(0), jnp.asarray(h), jnp.asarray(labels))["params"]
  out = module.apply({"params": params}, jnp.asarray(h), jnp.asarray(labels))
  adv = h @ np.asarray(params["adv"]["kernel"])[:, 0] + np.asarray(params["adv"]["bias"])[0]
  if condition == "projection":  # Miyato & Koyama (2018), eq. (3)
    adv = adv + np.sum(np.asarray(params["projection"]["embedding"])[labels] * h, axis=1)
  np.testing.assert_allclose(np.asarray(out["adv"]), adv, rtol=1e-5, atol=1e-5)
  if condition == "ac":
    np.testing.assert_allclose(np.asarray(out["class_logits"]),
                               h @ np.asarray(params["classifier"]["kernel"]), rtol=1e-5,
                               atol=1e-5)
  else:
    assert set(out) == {"adv"}


def test_label_planes():
  x = jnp.zeros((2, 3, 3, 1))
  y = conditioning.label_planes(x, jnp.array([2, 0]), 3)
  assert y.shape == (2, 3, 3, 4)
  np.testing.assert_array_equal(np.asarray(y[0, 1, 2]), [0, 0, 0, 1])
  np.testing.assert_array_equal(np.asarray(y[1, 0, 0]), [0, 1, 0, 0])


def test_upsample_and_pool():
  x = jnp.arange(4.0).reshape(1, 2, 2, 1)
  up = layers.upsample_nearest2(x)
  np.testing.assert_array_equal(np.asarray(up[0, :, :, 0]),
                                [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
  np.testing.assert_array_equal(np.asarray(layers.avg_pool2(up)), np.asarray(x))


def test_acgan_critic_exposes_its_layers_and_classifies():
  model = critic.Critic(width=8, num_classes=10, dropout=0.5)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 32, 32, 3))
  variables = model.init(jax.random.PRNGKey(1), x, None, train=False)
  out, state = model.apply(variables, x, None, train=False, mutable=[critic.INTERMEDIATES])
  assert out["adv"].shape == (3,) and out["class_logits"].shape == (3, 10)
  shapes = {k: v[0].shape for k, v in state[critic.INTERMEDIATES].items()}
  assert shapes == {"layer1": (3, 32, 32, 8), "layer2": (3, 16, 16, 8),
                    "layer3": (3, 16, 16, 8), "layer4": (3, 8, 8, 8), "layer5": (3, 8, 8, 8),
                    "layer6": (3, 8, 8, 8), "layer7": (3, 8, 8, 8), "layer8": (3, 4, 4, 8)}
  convs = [k for k in variables["params"] if k.startswith("conv")]
  assert len(convs) == 8
  # Dropout draws from the 'dropout' stream in training mode only.
  a = model.apply(variables, x, None, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
  b = model.apply(variables, x, None, train=True, rngs={"dropout": jax.random.PRNGKey(3)})
  assert not np.allclose(np.asarray(a["adv"]), np.asarray(b["adv"]))


def _shifted_norm(kind, train, backend="auto"):
  class Shifted(flax.linen.Module):
    @flax.linen.compact
    def __call__(self, x, shift):
      return layers.normalization(kind, train=train, name="norm", backend=backend)(x, shift)
  return Shifted()


def _reference_norm(kind, train):
  class Summed(flax.linen.Module):
    @flax.linen.compact
    def __call__(self, x, shift):
      if kind == "batch":
        norm = flax.linen.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                    name="norm")
      else:
        norm = flax.linen.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1), name="norm")
      return norm(x + shift)
  return Summed()


@pytest.mark.parametrize("kind,backend", [
    pytest.param("batch", "auto", id="batch-one_pass", marks=pytest.mark.skipif(
        not onednn.available(), reason=f"extension not available: {onednn.status()}")),
    ("batch", "xla"), ("layer", "auto")])
def test_a_normalization_of_x_plus_a_shift_is_flaxs_of_the_sum(kind, backend):
  kx, ks, kr, kv = jax.random.split(jax.random.PRNGKey(3), 4)
  x = jax.random.normal(kx, (8, 4, 4, 5)) * 2.0 + 0.5
  shift = jax.random.normal(ks, (5,)) * 3.0
  r = jax.random.normal(kr, x.shape)
  ours, ref = _shifted_norm(kind, True, backend), _reference_norm(kind, True)
  variables = ref.init(jax.random.PRNGKey(0), x, shift)
  # Batch norm on the "auto" backend takes its statistics from the extension's one-pass sums.
  one_pass = "ganjax_channel_sums" in str(jax.make_jaxpr(
      lambda v: ours.apply(v, x, shift, mutable=["batch_stats"]))(variables))
  assert one_pass == (kind == "batch" and backend == "auto")
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(0), x, shift)) == jax.tree.map(
      jnp.shape, variables)
  if kind == "batch":  # running statistics away from their initial values
    variables = _set(variables, ("batch_stats", "norm", "mean"), jax.random.normal(kv, (5,)))
  mutable = ["batch_stats"] if kind == "batch" else []

  def loss(module, x, shift):
    out = module.apply(variables, x, shift, mutable=mutable or False)
    y, updates = out if mutable else (out, {})
    return jnp.sum(y * r), (y, updates)

  (_, (y, updates)), grads = jax.value_and_grad(
      lambda *a: loss(ours, *a), argnums=(0, 1), has_aux=True)(x, shift)
  (_, (y_ref, updates_ref)), grads_ref = jax.value_and_grad(
      lambda *a: loss(ref, *a), argnums=(0, 1), has_aux=True)(x, shift)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
               updates, updates_ref)
  np.testing.assert_allclose(grads[0], grads_ref[0], rtol=1e-4, atol=1e-4)
  if kind == "batch":
    # Batch statistics absorb the shift: its gradient is exactly zero, where the sum's is
    # rounding noise.
    assert not np.any(np.asarray(grads[1]))
    np.testing.assert_allclose(grads_ref[1], 0.0, atol=1e-4)
  else:
    np.testing.assert_allclose(grads[1], grads_ref[1], rtol=1e-4, atol=1e-4)
  # With running averages (evaluation) the output is the normalization of the sum.
  eval_ours, eval_ref = _shifted_norm(kind, False), _reference_norm(kind, False)
  np.testing.assert_allclose(eval_ours.apply(variables, x, shift),
                             eval_ref.apply(variables, x, shift), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not onednn.available(), reason=f"extension not available: {onednn.status()}")
def test_a_batch_norm_without_affine_parameters_is_flaxs_on_the_extension():
  # The conditional batch norms' normalization (no scale, no bias) takes the one-pass form too.
  x = jax.random.normal(jax.random.PRNGKey(4), (6, 4, 4, 7)) * 1.5 - 0.3
  r = jax.random.normal(jax.random.PRNGKey(5), x.shape)
  options = dict(use_running_average=False, momentum=0.9, epsilon=1e-4, use_scale=False,
                 use_bias=False)
  ours, ref = layers.BatchNorm(**options), flax.linen.BatchNorm(**options)
  variables = ref.init(jax.random.PRNGKey(0), x)
  assert "params" not in ours.init(jax.random.PRNGKey(0), x)
  assert "ganjax_channel_sums" in str(jax.make_jaxpr(
      lambda v: ours.apply(v, x, mutable=["batch_stats"]))(variables))

  def loss(module, x):
    y, updates = module.apply(variables, x, mutable=["batch_stats"])
    return jnp.sum(y * r), (y, updates)

  (_, (y, updates)), dx = jax.value_and_grad(lambda x: loss(ours, x), has_aux=True)(x)
  (_, (y_ref, updates_ref)), dx_ref = jax.value_and_grad(lambda x: loss(ref, x),
                                                         has_aux=True)(x)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               updates, updates_ref)
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)
