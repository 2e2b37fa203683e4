"""BigGAN generator for small images (Brock, Donahue, Simonyan, ICLR 2019).

The 32x32 CIFAR-10 form of PyTorch-StudioGAN's ``models/big_resnet.py`` (config
``BigGAN-Mod``): the ResNet generator of `ganjax.models.resnet` with

* hierarchical latents: z (``z_dim`` = 80) is split into ``n_blocks + 1`` equal chunks; the
  first feeds the dense layer to the 4x4 map, chunk ``i + 1`` conditions block i;
* a shared class embedding (``shared_dim`` = 128, one table for all blocks, no spectral norm)
  concatenated with each block's chunk; each block's batch norms take their gain and bias
  linearly from that vector (`LinearConditionalBatchNorm`);
* spectral norm on every layer, orthogonal init, self-attention at ``attention_resolution``.

The discriminator is `ganjax.models.resnet.Discriminator` (StudioGAN's big_resnet D for 32x32 is
the same network) with width 2 * d_conv_dim, spectral norm and a projection head.
Unconditional (``num_classes`` = 0): the blocks are conditioned on their z chunks alone.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.errors import ConfigError
from ganjax.models import conditioning, layers, resnet
from ganjax.models.attention import SelfAttention

Array = jax.Array


class Generator(nn.Module):
  """z [B, z_dim] (+ labels) -> images [B, image_size, image_size, channels] in [-1, 1]."""

  z_dim: int = 80
  width: int = 384
  shared_dim: int = 128
  image_size: int = 32
  channels: int = 3
  num_classes: int = 0
  spectral_norm: bool = True
  attention_resolution: int = 16
  weight_init: str = "ortho"
  dtype: Any = jnp.float32
  conv_backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None, *, train: bool = True) -> Array:
    resolutions = resnet.block_resolutions(self.image_size)
    resnet.check_attention(self.attention_resolution, resolutions, "generator")
    chunks = len(resolutions) + 1
    if self.z_dim % chunks:
      raise ConfigError(f"BigGAN splits z into {chunks} chunks (one per block plus one); "
                        f"z_dim={self.z_dim} is not divisible by {chunks}")
    zs = jnp.split(z.astype(self.dtype), chunks, axis=1)
    conds = zs[1:]
    if self.num_classes:
      shared = conditioning.class_embedding(
          nn.Embed(self.num_classes, self.shared_dim,
                   embedding_init=layers.initializer(self.weight_init), dtype=self.dtype,
                   name="shared"), labels, self.num_classes)
      conds = [jnp.concatenate([shared, zc], axis=1) for zc in conds]
    h = layers.dense(4 * 4 * self.width, name="project", spectral_norm=self.spectral_norm,
                     init=self.weight_init, dtype=self.dtype)(zs[0])
    h = h.reshape(z.shape[0], 4, 4, self.width)
    for i, (res, cond) in enumerate(zip(resolutions, conds)):
      h = resnet.GeneratorBlock(self.width, "vector", 0, self.spectral_norm, self.weight_init,
                                self.dtype, self.conv_backend, name=f"block{i}")(h, cond,
                                                                                  train=train)
      if res == self.attention_resolution:
        h = SelfAttention(self.spectral_norm, weight_init=self.weight_init, dtype=self.dtype,
                          conv_backend=self.conv_backend, name="attention")(h)
    h = nn.relu(conditioning.generator_batch_norm(train, self.dtype, "bn_out",
                                                  self.conv_backend)(h))
    h = layers.conv(self.channels, 3, name="to_rgb", spectral_norm=self.spectral_norm,
                    init=self.weight_init, dtype=self.dtype, backend=self.conv_backend)(h)
    return jnp.tanh(h).astype(jnp.float32)
