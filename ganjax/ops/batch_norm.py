"""Batch normalization with batch statistics, each of its reductions one pass over the tensor.

Over the ``R`` rows of ``x`` (every axis but the last, the feature axis), Ioffe & Szegedy
(2015)::

    mean = sum_r x / R,   var = max(0, sum_r x^2 / R - mean^2)
    y = (x - mean) * k + bias,   k = scale / sqrt(var + eps)

(the variance from the two sums, as `flax.linen.BatchNorm` computes it by default). Its
vector-Jacobian product for the cotangents ``gy`` of ``y``, ``gm`` of ``mean`` and ``gv`` of
``var``, with ``S = sum_r gy`` and ``P = sum_r gy * x``::

    d bias = S,   d scale = (P - mean * S) / sqrt(var + eps)
    dv = gv - scale * (var + eps)^(-3/2) / 2 * (P - mean * S)      (0 where var was clipped)
    dx = k * gy + (gm - k * S - 2 * mean * dv) / R + (2 * dv / R) * x

So the forward pass needs the pair ``(sum x, sum x * x)`` and the backward pass the pair
``(sum gy, sum gy * x)``: `channel_sums` of ``(x, x)`` and of ``(gy, x)``. XLA's CPU backend
computes each pair as two reductions (and ``jax.grad`` through flax's batch norm makes two or
three in the backward pass), each a pass over a tensor that is usually far out of cache; the
ganjax CPU extension (`ganjax.ops.onednn`) computes a pair in one pass. Everything else is
elementwise, and XLA fuses it with its neighbours (the activation and its gradient).

`batch_norm` takes its sums from the extension (float32 on the CPU only) or, with
``use_extension=False``, from ``jnp.sum`` reductions. `ganjax.models.layers.BatchNorm` calls it
where the extension applies (`ganjax.ops.conv.uses_onednn`) and keeps flax's own batch norm
everywhere else.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ganjax.ops import onednn

Array = jax.Array


def _sums(a: Array, b: Array, use_extension: bool) -> tuple[Array, Array]:
  if use_extension:
    sums = onednn.channel_sums(a, b)
    return sums[..., 0, :], sums[..., 1, :]
  axes = tuple(range(a.ndim - 1))
  return jnp.sum(a, axes), jnp.sum(a * b, axes)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def channel_sums(a: Array, b: Array, use_extension: bool = True) -> tuple[Array, Array]:
  """``(sum_r a[r, c], sum_r a[r, c] * b[r, c])`` over every axis of ``a`` and ``b`` but the
  last, one pass over both on the extension (``use_extension``), two ``jnp.sum`` otherwise."""
  return _sums(a, b, use_extension)


def _channel_sums_fwd(a, b, use_extension):
  return _sums(a, b, use_extension), (a, b)


def _channel_sums_bwd(use_extension, res, g):
  del use_extension
  a, b = res
  gs, gp = g
  return gs + gp * b, gp * a


channel_sums.defvjp(_channel_sums_fwd, _channel_sums_bwd)


def _rows(x: Array) -> int:
  return x.size // x.shape[-1]


def _statistics(x: Array, use_extension: bool) -> tuple[Array, Array, Array]:
  """(mean, var, var before clipping at 0)."""
  s, q = channel_sums(x, x, use_extension)
  mean, mean_sq = s / _rows(x), q / _rows(x)
  raw = mean_sq - mean * mean
  return mean, jnp.maximum(raw, 0.0), raw


def _batch_norm_fwd(x, scale, bias, epsilon, use_extension):
  mean, var, raw = _statistics(x, use_extension)
  inv = jax.lax.rsqrt(var + epsilon)
  y = (x - mean) * (scale * inv) + bias
  return (y, mean, var), (x, scale, mean, inv, raw > 0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _batch_norm(x, scale, bias, epsilon, use_extension):
  return _batch_norm_fwd(x, scale, bias, epsilon, use_extension)[0]


def _batch_norm_bwd(epsilon, use_extension, res, g):
  del epsilon
  x, scale, mean, inv, unclipped = res
  gy, gm, gv = g
  s, p = channel_sums(gy, x, use_extension)
  centered = p - mean * s
  k = scale * inv
  dv = jnp.where(unclipped, gv - 0.5 * scale * inv * inv * inv * centered, 0.0)
  rows = _rows(x)
  dx = k * gy + (gm - k * s - 2.0 * mean * dv) / rows + (2.0 * dv / rows) * x
  return dx, centered * inv, s


_batch_norm.defvjp(_batch_norm_fwd, _batch_norm_bwd)


def batch_norm(x: Array, scale: Array, bias: Array, *, epsilon: float,
               use_extension: bool = True) -> tuple[Array, Array, Array]:
  """``(y, mean, var)`` of batch normalization over every axis of ``x`` but the last (see the
  module docstring), differentiable in ``x``, ``scale`` and ``bias`` to any order of reverse
  mode. ``use_extension``: the sums on the ganjax CPU extension (float32 on the CPU only;
  `ganjax.ops.onednn.channel_sums` raises where it is not available)."""
  return _batch_norm(x, scale, bias, float(epsilon), bool(use_extension))
