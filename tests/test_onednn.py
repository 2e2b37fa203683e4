"""ganjax.ops.onednn: oneDNN's convolution passes equal XLA's, to every derivative order."""

import os
import platform
import re
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ganjax.ops import conv, onednn
from tests.conftest import subprocess_env

jax.config.update("jax_default_matmul_precision", "highest")

# Every test here runs the extension. Switched off (GANJAX_ONEDNN=0: XLA's convolutions, the
# path of GPUs and TPUs) or on a platform it is not built for, there is nothing to test; on
# Linux x86-64 a missing extension fails (test_extension_is_built_on_linux_x86_64 says why).
_BUILT_HERE = sys.platform == "linux" and platform.machine() == "x86_64"
pytestmark = pytest.mark.skipif(
    os.environ.get("GANJAX_ONEDNN", "1") == "0" or not (_BUILT_HERE or onednn.available()),
    reason=f"no oneDNN convolutions: {onednn.status()}")

DN = ("NHWC", "HWIO", "NHWC")
# (x shape, kernel shape, strides, padding): odd sizes, asymmetric padding, batch of 3 (the
# chunks of the batch over XLA's threads are unequal). The last two have channel counts in
# whole blocks of oneDNN's layouts (kernels without padding in the blocked layout).
GEOMETRIES = [
    ((3, 5, 6, 4), (3, 3, 4, 7), (1, 1), ((1, 1), (1, 1))),
    ((3, 8, 6, 5), (4, 4, 5, 6), (2, 2), ((1, 1), (1, 1))),
    ((3, 7, 5, 2), (2, 3, 2, 3), (1, 2), ((0, 2), (1, 0))),
    ((1, 4, 4, 3), (1, 1, 3, 5), (1, 1), ((0, 0), (0, 0))),
    ((3, 6, 5, 32), (3, 3, 32, 64), (1, 1), ((1, 1), (1, 1))),
    ((2, 8, 8, 16), (4, 4, 16, 48), (2, 2), ((1, 1), (1, 1))),
]


def _lax_conv(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=DN)


def _inputs(x_shape, w_shape, seed=0):
  kx, kw = jax.random.split(jax.random.PRNGKey(seed))
  return jax.random.normal(kx, x_shape), jax.random.normal(kw, w_shape) * 0.3


def test_extension_is_built_on_linux_x86_64():
  if not _BUILT_HERE:
    pytest.skip("the oneDNN extension is built on Linux x86-64 only")
  assert onednn.available(), onednn.status()
  assert onednn.status().startswith("oneDNN 3.")


# Both ways oneDNN computes each pass: its direct convolutions, and im2col + GEMM.
algorithms = pytest.mark.parametrize("algorithm", sorted(onednn.ALGORITHMS))


def _onednn_conv(algorithm):
  return lambda a, b, strides, padding: onednn.conv(a, b, strides, padding, algorithm)


@algorithms
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0]}x{g[1]}s{g[2]}")
def test_forward_and_both_gradients_match_xla(geometry, algorithm):
  x_shape, w_shape, strides, padding = geometry
  x, w = _inputs(x_shape, w_shape)
  got_fn = jax.jit(lambda a, b: onednn.conv(a, b, strides, padding, algorithm))
  want, vjp_want = jax.vjp(lambda a, b: _lax_conv(a, b, strides, padding), x, w)
  got, vjp_got = jax.vjp(got_fn, x, w)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  cot = jax.random.normal(jax.random.PRNGKey(1), want.shape)
  for name, g, r in zip(("d/dx", "d/dkernel"), vjp_got(cot), vjp_want(cot)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4, err_msg=name)


@algorithms
@pytest.mark.parametrize("geometry", GEOMETRIES[:3], ids=lambda g: f"s{g[2]}")
def test_gradient_penalty_double_backward_matches_xla(geometry, algorithm):
  """d/dw and d/dx of ||d/dx sum(tanh(conv(x, w)))||^2: every pass differentiated again."""
  x_shape, w_shape, strides, padding = geometry
  x, w = _inputs(x_shape, w_shape, seed=2)

  def penalty(fn):
    def p(a, b):
      gx = jax.grad(lambda u: jnp.sum(jnp.tanh(fn(u, b, strides, padding))))(a)
      return jnp.sum(gx**2)
    return jax.jit(jax.grad(p, argnums=(0, 1)))

  for name, g, r in zip(("d/dx", "d/dkernel"), penalty(_onednn_conv(algorithm))(x, w),
                        penalty(_lax_conv)(x, w)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4, err_msg=name)


def test_third_order_derivative_of_the_kernel_gradient_matches_xla():
  x_shape, w_shape, strides, padding = GEOMETRIES[1]
  x, w = _inputs(x_shape, w_shape, seed=3)

  def f(fn):
    def kernel_grad_norm(a):
      gw = jax.grad(lambda b: jnp.sum(fn(a, b, strides, padding) ** 2))(w)
      return jnp.sum(jnp.sin(gw))
    return jax.jit(jax.grad(kernel_grad_norm))

  # sin() of kernel gradients of size ~30 turns their float32 rounding (which depends on how
  # each library splits the sums over threads) into absolute errors of ~1e-5 of the result's
  # scale, so the bound is relative to that scale, not to each element (some cancel to ~0.1).
  got, want = f(onednn.conv)(x), f(_lax_conv)(x)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * float(np.abs(want).max()))


@algorithms
@pytest.mark.parametrize("geometry", [GEOMETRIES[1], GEOMETRIES[-1]],
                         ids=lambda g: f"{g[0]}x{g[1]}")
@pytest.mark.parametrize("members", [3, 4])
def test_vmap_over_a_population_with_its_own_weights(geometry, algorithm, members):
  # With two threads, 4 members are split by member (each item one member's whole minibatch,
  # its kernel reorders in the same item) and 3 by chunks of each minibatch.
  x_shape, w_shape, strides, padding = geometry
  xs = jnp.stack([_inputs(x_shape, w_shape, seed=s)[0] for s in range(members)])
  ws = jnp.stack([_inputs(x_shape, w_shape, seed=s)[1] for s in range(members)])

  def loss(fn):
    return lambda a, b: jnp.sum(jnp.sin(fn(a, b, strides, padding)))

  got = jax.jit(jax.vmap(jax.value_and_grad(loss(_onednn_conv(algorithm)), (0, 1))))(xs, ws)
  want = jax.vmap(jax.value_and_grad(loss(_lax_conv), (0, 1)))(xs, ws)
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


@algorithms
def test_independent_calls_in_flight_at_once_keep_their_own_kernels(algorithm):
  # The handlers return before their last chunk is done, so one XLA thread can start the next
  # call while a helper still runs the previous one: each call's blocked kernels and partial
  # kernel gradients must be its own. Six independent convolutions (their own kernels, minibatch
  # of 3: chunks of 2 and 1 share one blocked kernel) and their gradients in one program.
  x_shape, w_shape, strides, padding = GEOMETRIES[-2]
  xs = [_inputs(x_shape, w_shape, seed=s)[0] for s in range(6)]
  ws = [_inputs(x_shape, w_shape, seed=s)[1] for s in range(6)]

  def loss(fn):
    return lambda a, b: sum(jnp.sum(jnp.sin(fn(x, w, strides, padding)) * (i + 1))
                            for i, (x, w) in enumerate(zip(a, b)))

  got = jax.jit(jax.value_and_grad(loss(_onednn_conv(algorithm)), (0, 1)))(xs, ws)
  want = jax.value_and_grad(loss(_lax_conv), (0, 1))(xs, ws)
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * float(np.abs(r).max()))


def test_a_call_the_handler_rejects_fails_with_its_reason():
  x_shape, w_shape, strides, padding = GEOMETRIES[0]
  x, w = _inputs(x_shape, w_shape)
  window = onednn.Window.make(x_shape, w_shape, strides, padding)
  attributes = dict(window.attributes("forward"), algorithm=np.int64(7))
  call = jax.ffi.ffi_call(onednn._TARGETS["forward"],
                          jax.ShapeDtypeStruct(window.y_shape, jnp.float32))
  with pytest.raises(Exception, match=r"algorithm must be 0 \(direct\) or 1 \(gemm\)"):
    jax.block_until_ready(jax.jit(lambda a, b: call(a, b, **attributes))(x, w))


_THREADS_SCRIPT = """
import os, jax, jax.numpy as jnp
from ganjax.ops import onednn
threads = lambda: sorted(open(f"/proc/self/task/{t}/comm").read().strip()
                         for t in os.listdir("/proc/self/task"))
x = jnp.ones((6, 9, 9, 32)); w = jnp.full((3, 3, 32, 64), 0.01)
jnp.sin(x).block_until_ready()  # XLA's own threads exist from here on
before = threads()
for algorithm in sorted(onednn.ALGORITHMS):
  for strides in ((1, 1), (2, 2)):
    loss = lambda a, b: jnp.sum(onednn.conv(a, b, strides, ((1, 1), (1, 1)), algorithm) ** 2)
    jax.block_until_ready(jax.jit(jax.grad(loss, (0, 1)))(x, w))
print(before, threads(), sep="\\n")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
def test_onednn_runs_on_xlas_threads_without_an_openmp_team(tmp_path):
  # Each work item runs oneDNN single-threaded on one of XLA's threads. oneDNN fixes a
  # primitive's thread count when it creates it: primitives created at the default count
  # opened an OpenMP team on every call (here OMP_NUM_THREADS=2: one more thread per XLA
  # thread that ran a call), oversubscribing the cores XLA's threads already fill.
  result = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], cwd=tmp_path,
                          env=subprocess_env(OMP_NUM_THREADS="2"), capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  before, after = result.stdout.strip().splitlines()[-2:]
  assert after == before, f"threads before the convolutions: {before}; after: {after}"


def test_conv_transpose_is_the_input_gradient():
  x_shape, w_shape, strides, padding = GEOMETRIES[1]
  x, w = _inputs(x_shape, w_shape, seed=4)
  y = _lax_conv(x, w, strides, padding)
  want = jax.vjp(lambda a: _lax_conv(a, w, strides, padding), x)[1](y)[0]
  got = onednn.conv_transpose(y, w, x_shape, strides, padding)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="does not map to an input of shape"):
    onednn.conv_transpose(y, w, (3, 9, 9, 5), (1, 1), padding)


def _lowered(fn, *args) -> str:
  return jax.jit(fn).lower(*args).as_text()


def test_small_outputs_take_the_gemm_form_by_default():
  x, w = _inputs((2, 8, 8, 4), (3, 3, 4, 8))
  for strides, code in (((2, 2), 1), ((1, 1), 0)):  # 4x4 outputs: GEMM; 8x8: direct
    text = _lowered(lambda a, b: onednn.conv(a, b, strides, ((1, 1), (1, 1))), x, w)
    assert f"algorithm = {code} : i64" in text, strides
  with pytest.raises(ValueError, match="unknown algorithm 'fft'"):
    onednn.conv(x, w, (1, 1), ((1, 1), (1, 1)), "fft")


def test_each_pass_takes_its_own_default_algorithm():
  def algorithms(x_shape, w_shape, strides):
    return onednn.Window.make(x_shape, w_shape, strides, ((1, 1), (1, 1))).algorithms

  # 4x4 outputs: GEMM, except for a strided convolution's kernel gradient.
  assert algorithms((2, 8, 8, 16), (4, 4, 16, 8), (2, 2)) == ("gemm", "gemm", "direct")
  assert algorithms((2, 4, 4, 16), (3, 3, 16, 8), (1, 1)) == ("gemm",) * 3
  # Larger outputs: direct, except for the input gradient onto an RGB image.
  assert algorithms((2, 8, 8, 16), (3, 3, 16, 8), (1, 1)) == ("direct",) * 3
  assert algorithms((2, 8, 8, 3), (3, 3, 3, 8), (1, 1)) == ("direct", "gemm", "direct")
  # A stride-1 forward pass onto an RGB image: the transposed convolution's input gradient.
  assert algorithms((2, 8, 8, 16), (3, 3, 16, 3), (1, 1)) == ("transposed", "direct", "direct")
  assert algorithms((2, 16, 16, 16), (4, 4, 16, 3), (2, 2))[0] == "direct"
  # The lowered gradient carries each pass's choice.
  x, w = _inputs((2, 8, 8, 4), (4, 4, 4, 4))
  text = _lowered(jax.grad(lambda a, b: jnp.sum(onednn.conv(a, b, (2, 2), ((1, 1), (1, 1)))
                                                ** 2), (0, 1)), x, w)
  calls = re.findall(r"(ganjax_onednn_conv_\w+).*?algorithm = (\d)", text)
  assert sorted(set(calls)) == [("ganjax_onednn_conv_backward_data", "1"),
                                ("ganjax_onednn_conv_backward_weights", "0"),
                                ("ganjax_onednn_conv_forward", "1")], calls


@pytest.mark.parametrize("padding", [((1, 1), (1, 1)), ((0, 2), (2, 1))])
def test_forward_onto_few_channels_is_the_transposed_input_gradient(padding):
  # F = 3, stride 1: the forward pass runs as backward_data of the flipped kernel (GEMM form);
  # its value and both gradients still equal XLA's.
  x, w = _inputs((3, 7, 6, 8), (3, 3, 8, 3))
  window = onednn.Window.make(x.shape, w.shape, (1, 1), padding)
  assert window.algorithm("forward") == onednn.TRANSPOSED
  assert window.transposed().algorithm("backward_data") == "gemm"
  np.testing.assert_allclose(
      onednn.flipped_kernel(w)[0, 2, :, :], np.asarray(w)[2, 0].T)  # w'[k, l, f, c]

  def loss(fn):
    return lambda a, b: jnp.sum(jnp.sin(fn(a, b, (1, 1), padding)))

  text = _lowered(lambda a, b: onednn.conv(a, b, (1, 1), padding), x, w)
  assert "ganjax_onednn_conv_backward_data" in text
  assert "ganjax_onednn_conv_forward" not in text
  got = jax.jit(jax.value_and_grad(loss(onednn.conv), (0, 1)))(x, w)
  want = jax.value_and_grad(loss(_lax_conv), (0, 1))(x, w)
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="stride-1"):
    onednn.Window.make(x.shape, w.shape, (2, 2), padding).transposed()


def test_conv_general_dilated_routes_only_what_onednn_computes():
  x, w = _inputs((2, 6, 6, 4), (3, 3, 4, 4))
  # name: (keyword arguments of conv_general_dilated, whether oneDNN computes it)
  cases = {
      "same": (dict(padding="SAME"), True),
      "strided, explicit padding": (dict(window_strides=(2, 1), padding=((1, 0), (2, 1))), True),
      "negative padding": (dict(padding=((-1, 0), (0, 0))), False),
      "dilated kernel": (dict(padding="SAME", rhs_dilation=(2, 2)), False),
      "dilated input": (dict(padding=((1, 1), (1, 1)), lhs_dilation=(2, 2)), False),
      "grouped": (dict(padding="SAME", feature_group_count=2), False),
  }
  for name, (kwargs, uses_onednn) in cases.items():
    kwargs = {"window_strides": (1, 1), "dimension_numbers": DN, **kwargs}
    kernel = w[:, :, :2] if name == "grouped" else w
    fn = lambda a, b, kwargs=kwargs: conv.conv_general_dilated(a, b, **kwargs)
    assert ("ganjax_onednn_conv" in _lowered(fn, x, kernel)) == uses_onednn, name
    np.testing.assert_allclose(jax.jit(fn)(x, kernel), lax.conv_general_dilated(x, kernel, **kwargs),
                               rtol=1e-5, atol=1e-5, err_msg=name)
  same = lambda a, b: conv.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=DN)
  assert "ganjax_onednn" not in _lowered(same, x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
  nchw = lambda a, b: conv.conv_general_dilated(a, b, (1, 1), "SAME",
                                                dimension_numbers=("NCHW", "OIHW", "NCHW"))
  assert "ganjax_onednn" not in _lowered(nchw, jnp.moveaxis(x, -1, 1), jnp.transpose(w, (3, 2, 0, 1)))


def test_flax_conv_with_the_drop_in_matches_flax_conv():
  x, _ = _inputs((2, 6, 6, 3), (3, 3, 3, 5))
  reference = nn.Conv(5, (3, 3), strides=2, padding=1)
  variables = reference.init(jax.random.PRNGKey(0), x)
  layer = nn.Conv(5, (3, 3), strides=2, padding=1, conv_general_dilated=conv.conv_general_dilated)
  assert "ganjax_onednn" in _lowered(layer.apply, variables, x)
  np.testing.assert_allclose(jax.jit(layer.apply)(variables, x), reference.apply(variables, x),
                             rtol=1e-5, atol=1e-5)


def test_other_platforms_lower_to_xla_convolution():
  """The oneDNN call is the CPU branch only: lowering for GPU keeps XLA's convolution."""
  x, w = _inputs((2, 6, 6, 4), (3, 3, 4, 4))
  fn = lambda a, b: conv.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=DN)
  lowered = jax.jit(fn).trace(x, w).lower(lowering_platforms=("cuda",)).as_text()
  assert "ganjax_onednn" not in lowered
  assert "stablehlo.convolution" in lowered
