"""Layers shared by the generators and discriminators."""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from ganjax.errors import ConfigError
from ganjax.ops import batch_norm
from ganjax.ops.conv import conv_fn, uses_onednn
from ganjax.models.spectral import maybe_spectral

Array = Any
ModuleFactory = Callable[..., Callable[[Array], Array]]


class BatchNorm(nn.BatchNorm):
  """`flax.linen.BatchNorm` of ``x + shift`` that never materializes the sum in training.

  ``shift`` is a per-feature vector, the bias of the layer before (``y = conv(x) + b``). With
  batch statistics, ``BN(x + b) = scale * (x - mean(x)) / sqrt(var(x) + eps) + bias``: the
  mean absorbs ``b`` and the variance does not see it (Ioffe & Szegedy, 2015, Section 3.2, on
  why such a bias can be dropped). So in training the output is computed from ``x`` alone, the
  running mean moves by ``mean(x) + b``, and ``d output / d b`` is exactly zero (computing it
  through ``x + b`` gives rounding noise that an Adam step scales up to the learning rate).
  With running averages the output is ``BN(x + b)`` as written. Parameters and batch
  statistics are flax's, so checkpoints of ``BN(conv(x) + b)`` load unchanged.

  In training, for float32 on the CPU with the ``"auto"`` convolution ``backend``, the
  statistics and their gradient are `ganjax.ops.batch_norm.batch_norm`'s, one pass over the
  tensor per pair of sums where flax's makes two (equal up to float rounding); everywhere
  else, and for the options that form does not cover, flax's own computation.
  """

  backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  @nn.compact
  def __call__(self, x: Array, shift: Array | None = None,
               use_running_average: bool | None = None, **kwargs) -> Array:
    running = nn.merge_param("use_running_average", self.use_running_average,
                             use_running_average)
    if not running and not kwargs and self._one_pass(x):
      return self._one_pass_batch_norm(x, shift)
    if shift is None or running:
      return super().__call__(x if shift is None else x + shift, use_running_average, **kwargs)
    y = super().__call__(x, use_running_average, **kwargs)
    if not self.is_initializing():  # flax's BatchNorm leaves its statistics alone in init
      mean = self.get_variable("batch_stats", "mean")
      self.put_variable("batch_stats", "mean",
                        mean + (1.0 - self.momentum) * shift.astype(mean.dtype))
    return y

  def _one_pass(self, x: Array) -> bool:
    """Whether `_one_pass_batch_norm` computes what flax's batch norm would."""
    return (self.axis in (-1, x.ndim - 1) and self.axis_name is None
            and self.use_fast_variance and self.force_float32_reductions
            and jnp.dtype(self.param_dtype) == jnp.float32
            and jnp.dtype(self.dtype or x.dtype) == jnp.float32
            and uses_onednn(self.backend, x.dtype))

  def _one_pass_batch_norm(self, x: Array, shift: Array | None) -> Array:
    # The variables of flax's BatchNorm, in its names, shapes and dtypes.
    features = (x.shape[-1],)
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), features)
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), features)
    scale = (self.param("scale", self.scale_init, features, self.param_dtype)
             if self.use_scale else jnp.ones(features, jnp.float32))
    bias = (self.param("bias", self.bias_init, features, self.param_dtype)
            if self.use_bias else jnp.zeros(features, jnp.float32))
    y, mean, var = batch_norm.batch_norm(x, scale, bias, epsilon=self.epsilon)
    if not self.is_initializing():
      if shift is not None:
        mean = mean + shift.astype(mean.dtype)
      ra_mean.value = self.momentum * ra_mean.value + (1.0 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1.0 - self.momentum) * var
    return y


def _batch_norm(train: bool, dtype: Any, name: str, backend: str) -> nn.Module:
  # momentum 0.9 is PyTorch's BatchNorm2d(momentum=0.1); eps as PyTorch.
  return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                   dtype=dtype, backend=backend, name=name)


def shifted(norm: Callable[[Array], Array]) -> Callable[..., Array]:
  """``f(x, shift=None) = norm(x + shift)`` for a normalization not invariant to the shift."""
  return lambda x, shift=None: norm(x if shift is None else x + shift)


def _layer_norm(train: bool, dtype: Any, name: str, backend: str) -> Callable[..., Array]:
  # Normalizes each example over height, width and channels, with a per-channel gain and bias
  # (the critic normalization of Gulrajani et al., 2017, which forbids batch norm in the critic).
  del train, backend
  return shifted(nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1), dtype=dtype,
                               name=name))


def _no_norm(train: bool, dtype: Any, name: str, backend: str) -> Callable[..., Array]:
  del train, dtype, name, backend
  return shifted(lambda x: x)


# Each returns ``norm(x, shift=None)``: the normalization of ``x + shift`` (see `BatchNorm`).
# Factories (train, dtype, name, convolution backend).
NORMALIZATIONS: dict[str, Callable[[bool, Any, str, str], Callable[..., Array]]] = {
    "batch": _batch_norm,
    "layer": _layer_norm,
    "none": _no_norm,
}


def normalization(kind: str, *, train: bool, dtype: Any = None, name: str | None = None,
                  backend: str = "auto") -> Callable[..., Array]:
  """Returns a normalization layer by name: 'batch', 'layer' or 'none'.

  The layer is ``norm(x, shift=None)``, the normalization of ``x + shift`` for a per-feature
  ``shift`` (a deferred bias, e.g. ``UpConv(..., defer_bias=True)``); batch norm computes it
  without forming the sum (`BatchNorm`), with its statistics on the convolution `backend`'s
  CPU kernels where those apply.
  """
  try:
    factory = NORMALIZATIONS[kind]
  except KeyError:
    raise ConfigError(
        f"unknown normalization {kind!r}; choose one of {sorted(NORMALIZATIONS)}") from None
  return factory(train, dtype, name, backend)


def num_resolution_steps(image_size: int, base_size: int = 4) -> int:
  """How many 2x up/downsamplings connect `base_size` and `image_size` (a power-of-2 ratio)."""
  steps, size = 0, base_size
  while size < image_size:
    size, steps = size * 2, steps + 1
  if size != image_size or steps == 0:
    raise ConfigError(
        f"image_size must be {base_size} times a power of two (8, 16, 32, 64, ...), "
        f"got {image_size}")
  return steps


# -- Weight initializers and (optionally spectrally normalized) linear layers -----------------

INITIALIZERS: dict[str, Callable[[], Callable[..., Array]]] = {
    # PyTorch-StudioGAN's init names (ops.init_weights); biases start at zero.
    "ortho": nn.initializers.orthogonal,
    "N02": lambda: nn.initializers.normal(0.02),
    "xavier": nn.initializers.xavier_uniform,
    "glorot": nn.initializers.xavier_uniform,
    # PyTorch's default for Conv2d / Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    "torch": lambda: nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
}


def initializer(name: str) -> Callable[..., Array]:
  """A weight initializer by name: 'ortho', 'N02', 'xavier' / 'glorot' or 'torch'."""
  try:
    return INITIALIZERS[name]()
  except KeyError:
    raise ConfigError(
        f"unknown init {name!r}; choose one of {sorted(INITIALIZERS)}") from None


def conv(features: int, kernel: int, *, name: str, spectral_norm: bool = False,
         init: str = "ortho", strides: int = 1, use_bias: bool = True,
         dtype: Any = None, backend: str = "auto") -> Callable[[Array], Array]:
  """A 'same'-padded k x k convolution (PyTorch padding k // 2), spectrally normalized or not,
  computed by the convolution `backend` (`ganjax.ops.conv.BACKENDS`)."""
  pad = kernel // 2
  return maybe_spectral(functools.partial(
      nn.Conv, features, (kernel, kernel), strides=(strides, strides), padding=pad,
      use_bias=use_bias, kernel_init=initializer(init), dtype=dtype,
      conv_general_dilated=conv_fn(backend)), spectral_norm, name)


def dense(features: int, *, name: str, spectral_norm: bool = False, init: str = "ortho",
          use_bias: bool = True, dtype: Any = None) -> Callable[[Array], Array]:
  """A linear layer, spectrally normalized or not."""
  return maybe_spectral(functools.partial(
      nn.Dense, features, use_bias=use_bias, kernel_init=initializer(init), dtype=dtype),
      spectral_norm, name)


def embed(num_embeddings: int, features: int, *, name: str, spectral_norm: bool = False,
          init: str = "ortho", dtype: Any = None) -> Callable[[Array], Array]:
  """A class embedding table ``[num_embeddings, features]``, spectrally normalized or not."""
  return maybe_spectral(functools.partial(
      nn.Embed, num_embeddings, features, embedding_init=initializer(init), dtype=dtype),
      spectral_norm, name)


def avg_pool2(x: Array) -> Array:
  """2x2 average pooling, stride 2."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def upsample_nearest2(x: Array) -> Array:
  """Nearest-neighbour 2x upsampling of an NHWC map."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
