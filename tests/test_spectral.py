"""Spectral normalization: against numpy's SVD and PyTorch; one power iteration per update."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import data
from ganjax.gan import build as experiment
from ganjax.models import spectral
from tests.tiny import tiny_config

SHAPES = [(3, 3, 16, 32), (4, 4, 8, 4), (1, 1, 12, 6), (20, 7), (5, 40)]


def random_kernel(rng, shape, gap=0.8):
  """A random kernel with random singular vectors and singular values s_1 > s_2 = gap * s_1 >
  ... (power iteration converges like gap**k; i.i.d. Gaussian matrices of these sizes have
  s_2 / s_1 > 0.9, where 20 iterations can leave 0.2-2% error)."""
  m, n = int(np.prod(shape[:-1])), shape[-1]
  k = min(m, n)
  u, _ = np.linalg.qr(rng.normal(size=(m, k)))
  v, _ = np.linalg.qr(rng.normal(size=(n, k)))
  s = 3.0 * np.concatenate([[1.0], gap * rng.uniform(0.2, 1.0, size=k - 1)])
  return ((u * s) @ v.T).reshape(shape).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
def test_twenty_power_iterations_estimate_the_largest_singular_value(shape):
  rng = np.random.default_rng(sum(shape))
  kernel = random_kernel(rng, shape)
  w = spectral.as_matrix(jnp.asarray(kernel))
  v0 = spectral.l2_normalize(jnp.asarray(rng.normal(size=w.shape[0]), jnp.float32))
  u, v = spectral.power_iteration(w, v0, n_steps=20)
  sigma = float(spectral.spectral_norm_estimate(w, u, v))
  # PyTorch's matrix [out, in * kh * kw]: the same singular values as ours.
  torch_layout = np.moveaxis(kernel, -1, 0).reshape(shape[-1], -1)
  expected = np.linalg.svd(torch_layout, compute_uv=False)[0]
  assert abs(sigma - expected) / expected < 1e-3, (sigma, expected)
  assert np.linalg.svd(np.asarray(w / sigma), compute_uv=False)[0] == pytest.approx(1, abs=1e-3)


def _flax_kernel_to_torch(kernel):
  """[kh, kw, in, out] -> [out, in, kh, kw]; [in, out] -> [out, in]."""
  return np.transpose(kernel, (3, 2, 0, 1)) if kernel.ndim == 4 else kernel.T


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_matches_torch_spectral_norm_on_the_same_weights_and_vector(kind):
  torch = pytest.importorskip("torch")
  from torch.nn.utils.parametrizations import spectral_norm  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  if kind == "conv":
    layer = functools.partial(nn.Conv, 6, (3, 3), padding=1)
    x = rng.normal(size=(2, 5, 5, 4)).astype(np.float32)
    t_layer = torch.nn.Conv2d(4, 6, 3, padding=1)
  else:
    layer = functools.partial(nn.Dense, 6)
    x = rng.normal(size=(3, 10)).astype(np.float32)
    t_layer = torch.nn.Linear(10, 6)
  module = spectral.SpectralNorm(layer())
  variables = module.init(jax.random.PRNGKey(1), jnp.asarray(x))
  kernel = np.asarray(variables["params"]["layer"]["kernel"])
  bias = np.asarray(variables["params"]["layer"]["bias"])
  u = np.asarray(variables[spectral.SPECTRAL]["kernel/u"])
  v = np.asarray(variables[spectral.SPECTRAL]["kernel/v"])
  if kind == "conv":  # fan_in order (kh, kw, in) -> PyTorch's (in, kh, kw)
    v = np.transpose(v.reshape(kernel.shape[:3]), (2, 0, 1)).reshape(-1)

  with torch.no_grad():
    t_layer.weight.copy_(torch.from_numpy(_flax_kernel_to_torch(kernel).copy()))
    t_layer.bias.copy_(torch.tensor(bias))
  t_layer = spectral_norm(t_layer, eps=spectral.DEFAULT_EPS)
  param = t_layer.parametrizations.weight[0]
  with torch.no_grad():
    param._u.copy_(torch.tensor(u))
    param._v.copy_(torch.tensor(v))
  t_layer.train()
  t_x = torch.tensor(np.moveaxis(x, -1, 1) if kind == "conv" else x)
  with torch.no_grad():
    t_out = t_layer(t_x).numpy()
    t_u = param._u.numpy().copy()
    t_layer.eval()  # read the normalized weight without another power iteration
    t_weight = t_layer.weight.numpy()

  # Training mode (the 'spectral' collection mutable): one power iteration, then normalize.
  out, updates = module.apply(variables, jnp.asarray(x), mutable=[spectral.SPECTRAL])
  if kind == "conv":
    t_out = np.moveaxis(t_out, 1, -1)
  np.testing.assert_allclose(np.asarray(out), t_out, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(updates[spectral.SPECTRAL]["kernel/u"]), t_u,
                             rtol=1e-5, atol=1e-6)
  w = spectral.as_matrix(jnp.asarray(kernel))
  new_u = updates[spectral.SPECTRAL]["kernel/u"]
  new_v = updates[spectral.SPECTRAL]["kernel/v"]
  normalized = np.asarray(w / spectral.spectral_norm_estimate(w, new_u, new_v)).reshape(
      kernel.shape)
  np.testing.assert_allclose(_flax_kernel_to_torch(normalized), t_weight, rtol=1e-5, atol=1e-6)

  # Inference (nothing mutable): the stored vectors, no iteration; equals PyTorch's eval mode.
  with torch.no_grad():
    eval_variables = {"params": variables["params"], **updates}
    np.testing.assert_allclose(
        np.asarray(module.apply(eval_variables, jnp.asarray(x))),
        np.moveaxis(t_layer(t_x).numpy(), 1, -1) if kind == "conv" else t_layer(t_x).numpy(),
        rtol=1e-5, atol=1e-5)


def test_sigma_gradient_flows_through_the_weight_only():
  """d/dW of W / sigma(W) with u, v fixed: finite differences of the same fixed-u, v map."""
  rng = np.random.default_rng(3)
  w = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  u = spectral.l2_normalize(jnp.asarray(rng.normal(size=4), jnp.float32))
  module = spectral.SpectralNorm(nn.Dense(4, use_bias=False))
  x = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)
  collections = {spectral.SPECTRAL: {"kernel/u": u, "kernel/v": spectral.l2_normalize(w @ u)}}

  def loss(kernel):
    return jnp.sum(module.apply({"params": {"layer": {"kernel": kernel}}, **collections}, x)**2)

  grad = jax.grad(loss)(w)
  eps = 1e-3
  direction = jnp.asarray(rng.normal(size=w.shape), jnp.float32)
  numeric = (loss(w + eps * direction) - loss(w - eps * direction)) / (2 * eps)
  assert float(jnp.sum(grad * direction)) == pytest.approx(float(numeric), rel=2e-2)


@pytest.fixture(scope="module")
def sagan_step():
  # N(0, 0.02) weights: with the configs' orthogonal init every singular value is 1 and any
  # vector is a fixed point of the iteration, which would hide how many iterations ran.
  config = tiny_config("sagan", n_critic=1, **{"generator.weight_init": "N02",
                                               "discriminator.weight_init": "N02"})
  dataset = data.load_dataset(config.dataset, "train", config.image_size)
  gan = experiment.build_gan(config, experiment.DataSpec(dataset.image_shape,
                                                         dataset.class_names))
  state = jax.jit(gan.init)(jax.random.PRNGKey(0))
  batch = data.training_batch(dataset, seed=0, step=0, batch_size=config.batch_size,
                              n_critic=1)
  new_state, _ = jax.jit(gan.train_step())(state, batch)
  return state, new_state


def _iterated(params, spectral_vectors, steps):
  """The expected (u, v) of every normalized kernel after `steps` power iterations."""
  out = {}
  flat = flax_paths(spectral_vectors)
  for path, v in flat.items():
    if not path.endswith("/v"):
      continue
    module_path, param_name = path[:-2].rsplit("/", 1)
    kernel = params_at(params, module_path + "/layer/" + param_name)
    u_new, v_new = spectral.power_iteration(spectral.as_matrix(kernel), v, steps)
    out[path[:-2] + "/u"], out[path] = np.asarray(u_new), np.asarray(v_new)
  return out


def flax_paths(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(flax_paths(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = v
  return out


def params_at(params, path):
  node = params
  for part in path.split("/"):
    node = node[part]
  return node


@pytest.mark.parametrize("player", ["generator", "discriminator"])
def test_one_power_iteration_per_update_of_each_player(sagan_step, player):
  """D is applied to the real batch, the fake batch and inside G's loss; G is applied for the
  critic's fakes and in its own update: each player's u still moves by exactly one iteration,
  computed with the weights before the update."""
  before, after = sagan_step
  old, new = getattr(before, player), getattr(after, player)
  vectors = old.collections[spectral.SPECTRAL]
  one = _iterated(old.params, vectors, 1)
  two = _iterated(old.params, vectors, 2)
  got = {k: np.asarray(v) for k, v in flax_paths(new.collections[spectral.SPECTRAL]).items()}
  assert set(got) == set(one) and len(got) >= 10
  for path in got:
    np.testing.assert_allclose(got[path], one[path], rtol=1e-4, atol=1e-5, err_msg=path)
  # The test can tell one iteration from two.
  assert max(np.max(np.abs(got[p] - two[p])) for p in got) > 1e-3
