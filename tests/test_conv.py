"""ganjax.ops.conv: every implementation equals the reference layer on the same weights."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.ops import conv, onednn

jax.config.update("jax_default_matmul_precision", "highest")

N, H, W, C, F = 2, 5, 4, 3, 6  # odd, non-square spatial size on purpose

# The oneDNN form where the extension is built and not switched off (GANJAX_ONEDNN=0 runs the
# rest: `tests/test_onednn.py` fails a checkout whose extension should be built and is not).
ONEDNN = pytest.param("onednn", marks=pytest.mark.skipif(not onednn.available(),
                                                         reason=onednn.status()))
WITH_ONEDNN = ("onednn",) if onednn.available() else ()


def _inputs(seed=0, shape=(N, H, W, C)):
  kx, kk, kg = jax.random.split(jax.random.PRNGKey(seed), 3)
  x = jax.random.normal(kx, shape)
  kernel = jax.random.normal(kk, (4, 4, shape[-1], F)) * 0.3
  return x, kernel, kg


def _value_and_grads(fn, x, kernel, key):
  y = fn(x, kernel)
  cot = jax.random.normal(key, y.shape)
  _, vjp = jax.vjp(fn, x, kernel)
  return (y, *vjp(cot))


def _flax_conv_transpose(x, kernel):
  layer = nn.ConvTranspose(F, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)), use_bias=False)
  return layer.apply({"params": {"kernel": kernel}}, x)


@pytest.mark.parametrize("impl", ["phase", "transpose", ONEDNN, "auto"])
def test_up_conv_matches_flax_conv_transpose_forward_and_gradients(impl):
  x, kernel, key = _inputs()
  want = _value_and_grads(_flax_conv_transpose, x, kernel, key)
  got = _value_and_grads(lambda a, b: conv.up_conv(a, b, impl), x, kernel, key)
  assert got[0].shape == (N, 2 * H, 2 * W, F)
  for name, g, w in zip(("output", "d/dx", "d/dkernel"), got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)


def test_up_conv_jitted_phase_matches_transpose():
  x, kernel, key = _inputs(seed=1, shape=(3, 4, 4, 5))
  fns = {impl: jax.jit(lambda a, b, impl=impl: _value_and_grads(
      lambda u, v: conv.up_conv(u, v, impl), a, b, key)) for impl in ("phase", "transpose")}
  for g, w in zip(fns["phase"](x, kernel), fns["transpose"](x, kernel)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_up_conv_module_params_do_not_depend_on_impl():
  x, _, _ = _inputs()
  variables = {impl: conv.UpConv(F, impl=impl).init(jax.random.PRNGKey(0), x)
               for impl in ("auto", "phase", "transpose")}
  shapes = {impl: jax.tree.map(jnp.shape, v) for impl, v in variables.items()}
  assert shapes["auto"] == shapes["phase"] == shapes["transpose"] == {
      "params": {"kernel": (4, 4, C, F), "bias": (F,)}}
  params = variables["auto"]
  params = {"params": {**params["params"], "bias": jnp.arange(F, dtype=jnp.float32)}}
  outs = [conv.UpConv(F, impl=impl).apply(params, x) for impl in ("auto", "phase", "transpose")]
  reference = nn.ConvTranspose(F, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2))).apply(
      params, x)
  for out in outs:
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


def test_up_conv_matches_torch_conv_transpose2d():
  torch = pytest.importorskip("torch")
  x, kernel, _ = _inputs(seed=2)
  bias = np.linspace(-1, 1, F).astype(np.float32)
  layer = torch.nn.ConvTranspose2d(C, F, 4, stride=2, padding=1)
  with torch.no_grad():  # kernel[i, j, c, f] = weight[c, f, 3 - i, 3 - j]
    layer.weight.copy_(torch.from_numpy(np.asarray(kernel)[::-1, ::-1].transpose(2, 3, 0, 1).copy()))
    layer.bias.copy_(torch.from_numpy(bias))
    want = layer(torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()))
  want = want.numpy().transpose(0, 2, 3, 1)
  params = {"params": {"kernel": kernel, "bias": jnp.asarray(bias)}}
  for impl in ("phase", "transpose", *WITH_ONEDNN):
    got = conv.UpConv(F, impl=impl).apply(params, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=impl)


def test_up_conv_rejects_bad_arguments():
  x, kernel, _ = _inputs()
  with pytest.raises(ValueError, match="unknown up_conv impl 'fast'"):
    conv.up_conv(x, kernel, "fast")
  with pytest.raises(ValueError, match="rank 4"):
    conv.up_conv(x[0], kernel, "phase")
  with pytest.raises(ValueError, match=r"\[4, 4, C, F\] kernel"):
    conv.up_conv(x, kernel[:3], "phase")
  with pytest.raises(ValueError, match="channels"):
    conv.up_conv(x[..., :2], kernel, "phase")


def _flax_strided_conv(x, kernel):
  layer = nn.Conv(F, (4, 4), strides=(2, 2), padding=1, use_bias=False)
  return layer.apply({"params": {"kernel": kernel}}, x)


@pytest.mark.parametrize("impl", ["phase", "strided", ONEDNN, "auto"])
def test_down_conv_matches_flax_strided_conv_forward_and_gradients(impl):
  x, kernel, key = _inputs(seed=3, shape=(N, 6, 8, C))
  want = _value_and_grads(_flax_strided_conv, x, kernel, key)
  got = _value_and_grads(lambda a, b: conv.down_conv(a, b, impl), x, kernel, key)
  assert got[0].shape == (N, 3, 4, F)
  for name, g, w in zip(("output", "d/dx", "d/dkernel"), got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("impl", ["phase", ONEDNN])
def test_down_conv_second_order_gradients_match(impl):
  """The gradient penalty differentiates d/dx of the critic again w.r.t. its weights."""
  x, kernel, _ = _inputs(seed=4, shape=(N, 4, 4, C))

  def penalty(fn):
    def p(k):
      gx = jax.grad(lambda u: jnp.sum(jnp.tanh(fn(u, k))))(x)
      return jnp.sum(gx**2)
    return jax.jit(jax.grad(p))

  np.testing.assert_allclose(penalty(lambda u, k: conv.down_conv(u, k, impl))(kernel),
                             penalty(_flax_strided_conv)(kernel), rtol=1e-4, atol=1e-5)


def test_down_conv_module_is_a_drop_in_for_flax_conv():
  x, _, _ = _inputs(seed=5, shape=(N, 8, 8, C))
  reference = nn.Conv(F, (4, 4), strides=(2, 2), padding=1)
  params = reference.init(jax.random.PRNGKey(0), x)
  params = {"params": {**params["params"], "bias": jnp.arange(F, dtype=jnp.float32)}}
  want = reference.apply(params, x)
  for impl in ("auto", "phase", "strided"):
    module = conv.DownConv(F, impl=impl)
    assert jax.tree.map(jnp.shape, module.init(jax.random.PRNGKey(0), x)) == jax.tree.map(
        jnp.shape, params)
    np.testing.assert_allclose(module.apply(params, x), want, rtol=1e-5, atol=1e-5,
                               err_msg=impl)


def test_down_conv_matches_torch_conv2d():
  torch = pytest.importorskip("torch")
  x, kernel, _ = _inputs(seed=6, shape=(N, 8, 6, C))
  layer = torch.nn.Conv2d(C, F, 4, stride=2, padding=1, bias=False)
  with torch.no_grad():  # kernel = weight.transpose(2, 3, 1, 0)
    layer.weight.copy_(torch.from_numpy(np.asarray(kernel).transpose(3, 2, 0, 1).copy()))
    want = layer(torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()))
  want = want.numpy().transpose(0, 2, 3, 1)
  for impl in ("phase", "strided", *WITH_ONEDNN):
    np.testing.assert_allclose(conv.down_conv(x, kernel, impl), want, rtol=1e-5, atol=1e-5,
                               err_msg=impl)


def test_down_conv_rejects_bad_arguments():
  x, kernel, _ = _inputs(shape=(N, 6, 8, C))
  with pytest.raises(ValueError, match="unknown down_conv impl 'fast'"):
    conv.down_conv(x, kernel, "fast")
  with pytest.raises(ValueError, match="even height and width"):
    conv.down_conv(x[:, :5], kernel, "phase")
  with pytest.raises(ValueError, match=r"\[4, 4, C, F\] kernel"):
    conv.down_conv(x, kernel[:, :2], "phase")


@pytest.mark.parametrize("kind", ["conv", "down", "up"])
def test_a_deferred_bias_is_returned_beside_the_convolution_with_the_same_parameters(kind):
  x, _, _ = _inputs(seed=7, shape=(N, 8, 8, C))
  make = {"conv": lambda **kw: conv.Conv(F, (3, 3), padding=1, **kw),
          "down": lambda **kw: conv.DownConv(F, **kw),
          "up": lambda **kw: conv.UpConv(F, **kw)}[kind]
  summed, deferred = make(), make(defer_bias=True)
  params = summed.init(jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, deferred.init(jax.random.PRNGKey(0), x)) == jax.tree.map(
      jnp.shape, params)
  params = {"params": {**params["params"], "bias": jnp.arange(1.0, F + 1)}}
  y, bias = deferred.apply(params, x)
  np.testing.assert_array_equal(bias, jnp.arange(1.0, F + 1))
  np.testing.assert_allclose(y + bias, summed.apply(params, x), rtol=1e-6, atol=1e-6)
  y, bias = make(defer_bias=True, use_bias=False).apply(
      {"params": {"kernel": params["params"]["kernel"]}}, x)
  assert bias is None
