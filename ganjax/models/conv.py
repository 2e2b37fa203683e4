"""Convolution layers shared by the generators and discriminators.

`UpConv` is the generator's 2x upsampling transposed convolution, with the semantics of
PyTorch's ``ConvTranspose2d(kernel_size=4, stride=2, padding=1)``: an ``[N, H, W, C]`` input
becomes ``[N, 2H, 2W, features]``. Its only parameter is ``kernel`` of shape
``[4, 4, C, features]`` (and ``bias``), laid out as `flax.linen.ConvTranspose`'s kernel.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

Initializer = Callable[..., Any]


class UpConv(nn.Module):
  """Transposed convolution, kernel 4, stride 2, output size twice the input size."""

  features: int
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    return nn.ConvTranspose(
        self.features, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
        use_bias=self.use_bias, kernel_init=self.kernel_init, dtype=self.dtype,
        param_dtype=self.param_dtype, name="conv")(x)
