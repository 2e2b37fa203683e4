"""ResNet generator and discriminator for 32x32 images (SNGAN, WGAN-GP ResNet, SAGAN).

The residual networks of Gulrajani et al. (NeurIPS 2017, appendix) and Miyato et al. (ICLR 2018,
appendix B.4), in the form of PyTorch-StudioGAN's ``models/resnet.py`` (CIFAR-10: generator
width 256 = 4 * g_conv_dim, discriminator width 128 = 2 * d_conv_dim).

Generator: z -> dense -> 4x4 x width; per 2x resolution a block
``BN -> ReLU -> up2 -> conv3x3 -> BN -> ReLU -> conv3x3`` plus the shortcut ``up2 -> conv1x1``
(up2 = nearest-neighbour 2x, as the papers); then BN -> ReLU -> conv3x3 -> tanh. With classes
the block norms are `ConditionalBatchNorm` (class embeddings for gain and bias).

Discriminator: an "optimized" first block ``conv3x3 -> ReLU -> conv3x3 -> avgpool`` with the
shortcut ``avgpool -> conv1x1``, then blocks ``ReLU -> conv3x3 -> ReLU -> conv3x3 [-> avgpool]``
with the shortcut ``conv1x1 [-> avgpool]`` when the block downsamples or changes width, down to
8x8 and then two blocks at 8x8 (StudioGAN's [down, down, -, -] for 32x32); ReLU, a sum over
positions and a head from `ganjax.models.conditioning` (projection for cGANs).

Optional everywhere: spectral normalization of every convolution / linear / embedding layer,
SAGAN self-attention after the block whose output has ``attention_resolution`` pixels per side
(0 = none), the weight init (StudioGAN: orthogonal).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.errors import ConfigError
from ganjax.models import conditioning, layers
from ganjax.models.attention import SelfAttention

Array = jax.Array


def block_resolutions(image_size: int) -> list[int]:
  """Output side of each generator block: 8, 16, ..., image_size."""
  n = layers.num_resolution_steps(image_size)
  return [4 * 2**(i + 1) for i in range(n)]


def check_attention(resolution: int, available: list[int], role: str) -> None:
  if resolution and resolution not in available:
    raise ConfigError(f"{role} attention_resolution={resolution} is not the output side of any "
                      f"block; choose one of {available} (or 0 for none)")


class GeneratorBlock(nn.Module):
  """Upsampling residual block; `cond` is class labels (cBN), vectors (linear cBN) or None."""

  features: int
  conditional: str = "none"   # 'none' | 'labels' | 'vector'
  num_classes: int = 0
  spectral_norm: bool = False
  weight_init: str = "ortho"
  dtype: Any = None
  conv_backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  def _norm(self, name: str, train: bool):
    if self.conditional == "labels":
      m = conditioning.ConditionalBatchNorm(self.num_classes, self.spectral_norm, self.weight_init,
                                            self.dtype, self.conv_backend, name=name)
      return lambda x, cond: m(x, cond, train=train)
    if self.conditional == "vector":
      m = conditioning.LinearConditionalBatchNorm(self.spectral_norm, self.weight_init, self.dtype,
                                                  self.conv_backend, name=name)
      return lambda x, cond: m(x, cond, train=train)
    m = conditioning.generator_batch_norm(train, self.dtype, name, self.conv_backend)
    return lambda x, cond: m(x)

  @nn.compact
  def __call__(self, x: Array, cond: Array | None, *, train: bool) -> Array:
    conv = lambda k, name: layers.conv(self.features, k, name=name,
                                       spectral_norm=self.spectral_norm, init=self.weight_init,
                                       dtype=self.dtype, backend=self.conv_backend)
    h = nn.relu(self._norm("bn1", train)(x, cond))
    h = conv(3, "conv1")(layers.upsample_nearest2(h))
    h = nn.relu(self._norm("bn2", train)(h, cond))
    h = conv(3, "conv2")(h)
    return h + conv(1, "shortcut")(layers.upsample_nearest2(x))


class Generator(nn.Module):
  """z [B, z_dim] (+ labels) -> images [B, image_size, image_size, channels] in [-1, 1]."""

  z_dim: int = 128
  width: int = 256
  image_size: int = 32
  channels: int = 3
  num_classes: int = 0
  spectral_norm: bool = False
  attention_resolution: int = 0
  weight_init: str = "ortho"
  dtype: Any = jnp.float32
  conv_backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None, *, train: bool = True) -> Array:
    resolutions = block_resolutions(self.image_size)
    check_attention(self.attention_resolution, resolutions, "generator")
    h = layers.dense(4 * 4 * self.width, name="project", spectral_norm=self.spectral_norm,
                     init=self.weight_init, dtype=self.dtype)(z.astype(self.dtype))
    h = h.reshape(z.shape[0], 4, 4, self.width)
    conditional = "labels" if self.num_classes else "none"
    for i, res in enumerate(resolutions):
      h = GeneratorBlock(self.width, conditional, self.num_classes, self.spectral_norm,
                         self.weight_init, self.dtype, self.conv_backend,
                         name=f"block{i}")(h, labels, train=train)
      if res == self.attention_resolution:
        h = SelfAttention(self.spectral_norm, weight_init=self.weight_init, dtype=self.dtype,
                          conv_backend=self.conv_backend, name="attention")(h)
    h = nn.relu(conditioning.generator_batch_norm(train, self.dtype, "bn_out",
                                                  self.conv_backend)(h))
    h = layers.conv(self.channels, 3, name="to_rgb", spectral_norm=self.spectral_norm,
                    init=self.weight_init, dtype=self.dtype, backend=self.conv_backend)(h)
    return jnp.tanh(h).astype(jnp.float32)


class DiscriminatorBlock(nn.Module):
  """Residual block of the discriminator (``optimized``: the first block, on the image)."""

  features: int
  downsample: bool = True
  optimized: bool = False
  norm: str = "none"
  spectral_norm: bool = False
  weight_init: str = "ortho"
  dtype: Any = None
  conv_backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    conv = lambda k, name: layers.conv(self.features, k, name=name,
                                       spectral_norm=self.spectral_norm, init=self.weight_init,
                                       dtype=self.dtype, backend=self.conv_backend)
    norm = lambda name: layers.normalization(self.norm, train=train, dtype=self.dtype,
                                             name=name, backend=self.conv_backend)
    down = layers.avg_pool2 if self.downsample else (lambda t: t)
    if self.optimized:
      h = conv(3, "conv1")(x)
      h = conv(3, "conv2")(nn.relu(norm("norm1")(h)))
      return down(h) + conv(1, "shortcut")(down(x))
    h = conv(3, "conv1")(nn.relu(norm("norm1")(x)))
    h = down(conv(3, "conv2")(nn.relu(norm("norm2")(h))))
    if self.downsample or x.shape[-1] != self.features:
      x = down(conv(1, "shortcut")(x))
    return h + x


class Discriminator(nn.Module):
  """images [B, H, W, C] (+ labels) -> {'adv': [B]} (and 'class_logits' with condition 'ac').

  Attributes:
    width: channels of every block.
    condition: how labels enter (`ganjax.models.conditioning.DISCRIMINATOR_HEADS`).
    norm: normalization inside the blocks ('none' with spectral norm; 'layer' for a WGAN-GP
      critic; 'batch' as StudioGAN's D without spectral norm).
    dropout: dropout rate on the pooled features before the heads (0 = none).
  """

  width: int = 128
  image_size: int = 32
  num_classes: int = 0
  condition: str = "projection"
  spectral_norm: bool = True
  norm: str = "none"
  attention_resolution: int = 0
  dropout: float = 0.0
  weight_init: str = "ortho"
  dtype: Any = jnp.float32
  conv_backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None, *,
               train: bool = True) -> dict[str, Array]:
    conditioning.check_condition(self.condition)
    n_down = max(layers.num_resolution_steps(self.image_size) - 1, 1)
    downs = [True] * n_down + [False, False]
    resolutions = [self.image_size // 2**min(i + 1, n_down) for i in range(len(downs))]
    check_attention(self.attention_resolution, sorted(set(resolutions)), "discriminator")
    h = x.astype(self.dtype)
    if self.condition == "input" and self.num_classes:
      h = conditioning.label_planes(h, labels, self.num_classes)
    attended = False
    for i, (down, res) in enumerate(zip(downs, resolutions)):
      h = DiscriminatorBlock(self.width, down, i == 0, self.norm, self.spectral_norm,
                             self.weight_init, self.dtype, self.conv_backend,
                             name=f"block{i}")(h, train=train)
      if res == self.attention_resolution and not attended:
        h = SelfAttention(self.spectral_norm, weight_init=self.weight_init, dtype=self.dtype,
                          conv_backend=self.conv_backend, name="attention")(h)
        attended = True
    h = jnp.sum(nn.relu(h), axis=(1, 2))
    if self.dropout:
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return conditioning.discriminator_head(
        h, labels, condition=self.condition, num_classes=self.num_classes,
        spectral_norm=self.spectral_norm, init=self.weight_init, dtype=self.dtype)
