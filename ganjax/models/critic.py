"""The eight-convolution critic / classifier of the WGAN-GP auxiliary-classifier GAN.

The CIFAR-10 discriminator used with WGAN-GP and an auxiliary classifier in the widely taught
PyTorch ACGAN/WGAN-GP exercise (after Gulrajani et al., NeurIPS 2017, and Odena et al., ICML
2017): eight 3x3 convolutions of ``width`` (196) channels, each followed by layer norm and
LeakyReLU; convolutions 2, 4 and 8 have stride 2 (32 -> 16 -> 8 -> 4), the rest stride 1;
then a max over the remaining positions and two linear outputs, the critic value (``'adv'``)
and ``num_classes`` class logits (``'class_logits'``).

Layer norm here normalizes each example over (H, W, C) with a per-channel gain and bias (the
exercise's ``nn.LayerNorm((C, H, W))`` has a gain per position and channel). Dropout after each
activation is optional. The activation after each convolution is recorded with
``self.sow('intermediates', 'layer{i}', h)`` so feature extractors can read every layer:
``model.apply(variables, x, train=False, mutable=['intermediates'])``.

The same network trained alone on labelled data is a CIFAR-10 classifier (``'class_logits'``).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.models import conditioning, layers

Array = jax.Array

STRIDES = (1, 2, 1, 2, 1, 1, 1, 2)
INTERMEDIATES = "intermediates"


class Critic(nn.Module):
  """images [B, H, W, C] -> {'adv': [B], 'class_logits': [B, num_classes]}.

  Attributes:
    width: channels of every convolution (196).
    norm: 'layer' (WGAN-GP: no batch norm in the critic), 'batch' or 'none'.
    negative_slope: of the LeakyReLU.
    dropout: dropout rate after each activation (0 = none).
    condition: discriminator head (`ganjax.models.conditioning`): 'ac' by default.
  """

  width: int = 196
  image_size: int = 32
  num_classes: int = 0
  norm: str = "layer"
  negative_slope: float = 0.2
  dropout: float = 0.0
  condition: str = "ac"
  spectral_norm: bool = False
  weight_init: str = "torch"
  dtype: Any = jnp.float32
  conv_backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None, *,
               train: bool = True) -> dict[str, Array]:
    conditioning.check_condition(self.condition)
    h = x.astype(self.dtype)
    if self.condition == "input" and self.num_classes:
      h = conditioning.label_planes(h, labels, self.num_classes)
    for i, stride in enumerate(STRIDES):
      h = layers.conv(self.width, 3, name=f"conv{i + 1}", strides=stride,
                      spectral_norm=self.spectral_norm, init=self.weight_init, dtype=self.dtype,
                      backend=self.conv_backend)(h)
      h = layers.normalization(self.norm, train=train, dtype=self.dtype, name=f"norm{i + 1}",
                               backend=self.conv_backend)(h)
      h = nn.leaky_relu(h, self.negative_slope)
      if self.dropout:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
      self.sow(INTERMEDIATES, f"layer{i + 1}", h)
    h = jnp.max(h, axis=(1, 2))
    return conditioning.discriminator_head(
        h, labels, condition=self.condition, num_classes=self.num_classes,
        spectral_norm=self.spectral_norm, init=self.weight_init, dtype=self.dtype)
