"""Research-only variants of the models / step, switched on by name in bench_train_step.py.

Each variant patches ganjax modules in this process only (experiments, never the library).
"""

VARIANTS = {}


def variant(fn):
  VARIANTS[fn.__name__] = fn
  return fn


def apply(names):
  for name in names:
    if name not in VARIANTS:
      raise ValueError(f"unknown variant {name!r}; known: {sorted(VARIANTS)}")
    VARIANTS[name]()


def _python_scan(f, init, xs, length=None, unroll=1, **kwargs):
  """lax.scan semantics with a Python loop: the iterations are straight-line code."""
  import jax
  import jax.numpy as jnp
  n = jax.tree.leaves(xs)[0].shape[0] if length is None else length
  carry, ys = init, []
  for i in range(n):
    carry, y = f(carry, jax.tree.map(lambda a: a[i], xs))
    ys.append(y)
  return carry, jax.tree.map(lambda *a: jnp.stack(a), *ys)


@variant
def python_loop_critic():
  """Critic updates as a Python loop (no while loop at all) instead of lax.scan(unroll=True)."""
  from ganjax import steps
  import types
  steps.jax = types.SimpleNamespace(**{k: getattr(__import__("jax"), k) for k in ("random", "grad", "tree", "sharding")},
                                    lax=types.SimpleNamespace(scan=_python_scan,
                                                              stop_gradient=__import__("jax").lax.stop_gradient,
                                                              with_sharding_constraint=__import__("jax").lax.with_sharding_constraint))


def _patch_down_conv(impl):
  import functools
  import types
  import flax.linen as nn
  from ganjax.models import conv, dcgan

  def conv_factory(features, kernel_size, strides=(1, 1), padding="SAME", **kw):
    if tuple(kernel_size) == (4, 4) and tuple(strides) == (2, 2) and padding == 1:
      return conv.DownConv(features, impl=impl, **kw)
    return nn.Conv(features, kernel_size, strides=strides, padding=padding, **kw)

  proxy = types.SimpleNamespace(**{k: getattr(nn, k) for k in dir(nn) if not k.startswith("_")})
  proxy.Conv = conv_factory
  dcgan.nn = proxy


@variant
def down_phase():
  """The discriminator's 4x4 stride-2 convolutions as conv.DownConv(impl='phase')."""
  _patch_down_conv("phase")


@variant
def down_strided():
  """conv.DownConv(impl='strided') (same as nn.Conv; checks the patch itself costs nothing)."""
  _patch_down_conv("strided")


@variant
def onednn_direct():
  """Every oneDNN convolution as its direct primitive (no im2col + GEMM for small outputs)."""
  from ganjax.models import onednn
  onednn.GEMM_MAX_OUTPUT_PIXELS = 0
