"""DCGAN generator and discriminator for small images (32x32 CIFAR-10 and other powers of 2).

Radford, Metz, Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016. The guidelines followed: no pooling (strided
convolutions in the discriminator, transposed convolutions in the generator), batch norm in
both players except at the generator output and the discriminator input, ReLU in the generator
with tanh at its output, LeakyReLU in the discriminator, weights from N(0, 0.02). The layer
shapes are those of PyTorch-StudioGAN's CIFAR-10 DCGAN (a 3x3 stride-1 convolution before every
strided one in the discriminator, a 3x3 output convolution in the generator).

The discriminator returns raw logits, so the same network is the WGAN critic (a linear output)
with ``norm='batch'`` (WGAN) or ``norm='layer'`` / ``'none'`` (WGAN-GP).

Class-conditional forms (``num_classes > 0``): the generator takes the one-hot label
concatenated to z (the conditional GAN of Mirza & Osindero, 2014, and the ACGAN generator of
Odena et al., 2017); the discriminator takes it as one-hot planes concatenated to the image
(``condition='input'``, cGAN), or has an auxiliary-classifier head (``'ac'``, ACGAN) or a
projection head (``'projection'``); see `ganjax.models.conditioning`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.models import conditioning, layers
from ganjax.ops.conv import Conv, DownConv, UpConv, conv_fn

Array = jax.Array
dcgan_init = nn.initializers.normal(0.02)


class Generator(nn.Module):
  """z [B, z_dim] -> images [B, image_size, image_size, channels] in [-1, 1].

  Dense to a 4x4 map of ``width * 2**n`` channels, then n blocks of (2x transposed
  convolution, batch norm, ReLU) halving the channels, then a 3x3 convolution and tanh.
  """

  z_dim: int = 128
  width: int = 64
  image_size: int = 32
  channels: int = 3
  num_classes: int = 0
  dtype: Any = jnp.float32
  conv_backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None, *, train: bool = True) -> Array:
    n_up = layers.num_resolution_steps(self.image_size)
    z = z.astype(self.dtype)
    if self.num_classes:
      z = jnp.concatenate([z, conditioning.class_one_hot(labels, self.num_classes, z.dtype)],
                          axis=1)
    x = nn.Dense(4 * 4 * self.width * 2**n_up, kernel_init=dcgan_init, dtype=self.dtype,
                 name="project")(z)
    x = x.reshape(z.shape[0], 4, 4, self.width * 2**n_up)
    x = nn.relu(layers.normalization("batch", train=train, dtype=self.dtype,
                                          backend=self.conv_backend, name="project_bn")(x))
    for i in range(n_up):
      y, bias = UpConv(self.width * 2**(n_up - 1 - i), kernel_init=dcgan_init,
                       dtype=self.dtype, backend=self.conv_backend, defer_bias=True,
                       name=f"up{i}")(x)
      x = nn.relu(layers.normalization("batch", train=train, dtype=self.dtype,
                                       backend=self.conv_backend, name=f"bn{i}")(y, bias))
    x = nn.Conv(self.channels, (3, 3), padding=1, kernel_init=dcgan_init, dtype=self.dtype,
                conv_general_dilated=conv_fn(self.conv_backend), name="to_rgb")(x)
    return jnp.tanh(x).astype(jnp.float32)


class Discriminator(nn.Module):
  """images [B, H, W, C] (+ labels) -> {'adv': logits [B]} (+ 'class_logits' for 'ac').

  n blocks of (3x3 stride-1 convolution, 4x4 stride-2 convolution), each followed by the
  normalization and LeakyReLU (none after the very first convolution), channels doubling from
  ``width``; then a 3x3 convolution, a sum over positions and a linear output (and the class
  head of ``condition`` when conditional; optional dropout on the pooled features).
  """

  width: int = 64
  image_size: int = 32
  norm: str = "batch"
  negative_slope: float = 0.2
  num_classes: int = 0
  condition: str = "input"
  dropout: float = 0.0
  dtype: Any = jnp.float32
  conv_backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None, *,
               train: bool = True) -> dict[str, Array]:
    conditioning.check_condition(self.condition)
    n_down = layers.num_resolution_steps(self.image_size)
    act = lambda h: nn.leaky_relu(h, self.negative_slope)
    norm = lambda name: layers.normalization(self.norm, train=train, dtype=self.dtype, name=name,
                                             backend=self.conv_backend)
    # Every convolution returns (conv(h), bias); a normalization takes the bias as its shift.
    conv = lambda features, name: Conv(
        features, (3, 3), padding=1, kernel_init=dcgan_init, dtype=self.dtype, name=name,
        conv_general_dilated=conv_fn(self.conv_backend), defer_bias=True)
    h = x.astype(self.dtype)
    if self.condition == "input" and self.num_classes:
      h = conditioning.label_planes(h, labels, self.num_classes)
    for i in range(n_down):
      features = self.width * 2**i
      y, bias = conv(features, f"conv{i}a")(h)
      h = act(y + bias if i == 0 else norm(f"norm{i}a")(y, bias))
      h = act(norm(f"norm{i}b")(*DownConv(features, kernel_init=dcgan_init, dtype=self.dtype,
                                          backend=self.conv_backend, defer_bias=True,
                                          name=f"conv{i}b")(h)))
    h = act(norm("norm_out")(*conv(self.width * 2**n_down, "conv_out")(h)))
    h = jnp.sum(h, axis=(1, 2))
    if self.dropout:
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return conditioning.discriminator_head(h, labels, condition=self.condition,
                                           num_classes=self.num_classes, init="N02",
                                           dtype=self.dtype)
