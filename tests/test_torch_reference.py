"""tests/torch_reference.py computes the same networks as ganjax.models.dcgan.

The speed comparison of python -m experiments.bench_train_step is only meaningful if both sides run
the same architecture; this loads ganjax's parameters into the PyTorch reference and compares.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.models import dcgan

torch = pytest.importorskip("torch")
from tests import torch_reference as tr  # noqa: E402

WIDTH, Z_DIM, BATCH = 4, 8, 3


def _t(a):
  return torch.from_numpy(np.array(a, dtype=np.float32))


def _load_conv(module, p, transposed=False):
  k = np.asarray(p["kernel"])
  w = k[::-1, ::-1].transpose(2, 3, 0, 1) if transposed else k.transpose(3, 2, 0, 1)
  module.weight.copy_(_t(w))
  module.bias.copy_(_t(p["bias"]))


def _load_norm(module, p):
  module.weight.copy_(_t(p["scale"]))
  module.bias.copy_(_t(p["bias"]))


@pytest.fixture(scope="module")
def jax_players():
  g = dcgan.Generator(z_dim=Z_DIM, width=WIDTH)
  z = jax.random.normal(jax.random.PRNGKey(0), (BATCH, Z_DIM))
  x = jax.random.uniform(jax.random.PRNGKey(1), (BATCH, 32, 32, 3), minval=-1, maxval=1)
  return g, z, x


def test_generator_matches(jax_players):
  g, z, _ = jax_players
  variables = g.init(jax.random.PRNGKey(2), z)
  # perturb the batch-norm affine parameters so they are tested too
  params = jax.tree.map(lambda a: a + 0.1 * jnp.cos(jnp.arange(a.size).reshape(a.shape)),
                        variables["params"])
  want, _ = g.apply({"params": params, **{k: v for k, v in variables.items() if k != "params"}},
                    z, train=True, mutable=["batch_stats"])
  ref = tr.Generator(Z_DIM, WIDTH)
  c = 8 * WIDTH
  with torch.no_grad():
    k = np.asarray(params["project"]["kernel"])  # [z, 16 c], NHWC order (h, w, c)
    ref.project.weight.copy_(_t(k.T.reshape(16, c, Z_DIM).transpose(1, 0, 2).reshape(16 * c,
                                                                                     Z_DIM)))
    ref.project.bias.copy_(_t(np.asarray(params["project"]["bias"]).reshape(16, c).T.reshape(-1)))
    _load_norm(ref.project_bn, params["project_bn"])
    for i in range(3):
      _load_conv(ref.ups[i], params[f"up{i}"], transposed=True)
      _load_norm(ref.bns[i], params[f"bn{i}"])
    _load_conv(ref.to_rgb, params["to_rgb"])
    got = ref(_t(z)).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_discriminator_matches(jax_players, norm):
  _, _, x = jax_players
  d = dcgan.Discriminator(width=WIDTH, norm=norm, negative_slope=0.1)
  variables = d.init(jax.random.PRNGKey(3), x)
  params = jax.tree.map(lambda a: a + 0.1 * jnp.sin(jnp.arange(a.size).reshape(a.shape)),
                        variables["params"])
  rest = {k: v for k, v in variables.items() if k != "params"}
  out = d.apply({"params": params, **rest}, x, train=True, mutable=list(rest))
  want = out[0]["adv"]
  ref = tr.Discriminator(WIDTH, norm, negative_slope=0.1)
  names = [("conv0a", None), ("conv0b", "norm0b"), ("conv1a", "norm1a"), ("conv1b", "norm1b"),
           ("conv2a", "norm2a"), ("conv2b", "norm2b"), ("conv_out", "norm_out")]
  with torch.no_grad():
    for i, (conv_name, norm_name) in enumerate(names):
      _load_conv(ref.convs[i], params[conv_name])
      if norm_name is not None and norm != "none":
        _load_norm(ref.norms[i], params[norm_name])
    ref.adv.weight.copy_(_t(np.asarray(params["adv"]["kernel"]).T))
    ref.adv.bias.copy_(_t(params["adv"]["bias"]))
    got = ref(_t(np.asarray(x).transpose(0, 3, 1, 2))).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
