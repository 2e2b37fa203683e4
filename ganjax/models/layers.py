"""Layers shared by the generators and discriminators."""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from ganjax.errors import ConfigError

Array = Any
ModuleFactory = Callable[..., Callable[[Array], Array]]


def _batch_norm(train: bool, dtype: Any, name: str) -> nn.Module:
  # momentum 0.9 is PyTorch's BatchNorm2d(momentum=0.1); eps as PyTorch.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      dtype=dtype, name=name)


def _layer_norm(train: bool, dtype: Any, name: str) -> nn.Module:
  # Normalizes each example over height, width and channels, with a per-channel gain and bias
  # (the critic normalization of Gulrajani et al., 2017, which forbids batch norm in the critic).
  del train
  return nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1), dtype=dtype, name=name)


def _no_norm(train: bool, dtype: Any, name: str) -> Callable[[Array], Array]:
  del train, dtype, name
  return lambda x: x


NORMALIZATIONS: dict[str, Callable[[bool, Any, str], Callable[[Array], Array]]] = {
    "batch": _batch_norm,
    "layer": _layer_norm,
    "none": _no_norm,
}


def normalization(kind: str, *, train: bool, dtype: Any = None,
                  name: str | None = None) -> Callable[[Array], Array]:
  """Returns a normalization layer by name: 'batch', 'layer' or 'none'."""
  try:
    factory = NORMALIZATIONS[kind]
  except KeyError:
    raise ConfigError(
        f"unknown normalization {kind!r}; choose one of {sorted(NORMALIZATIONS)}") from None
  return factory(train, dtype, name)


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
