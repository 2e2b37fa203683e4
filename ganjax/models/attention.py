"""Self-attention block of SAGAN (Zhang, Goodfellow, Metaxas, Odena, ICML 2019).

For an input x ``[B, H, W, C]`` with N = H W positions:

    theta = x W_theta  [B, N, C/8]        (1x1 convolutions, no bias)
    phi   = pool(x W_phi)  [B, M, C/8]
    g     = pool(x W_g)    [B, M, C/2]
    beta  = softmax_j(theta_i . phi_j)  [B, N, M]   (softmax over the key positions j)
    o     = (beta g) W_o   [B, N, C]
    y     = x + gamma * o,   gamma a learned scalar initialised to 0

so the block starts as the identity and learns how much non-local evidence to use. ``pool``
is 2x2 max pooling (M = N / 4) as in PyTorch-StudioGAN's ``ops.SelfAttention`` and BigGAN's
reference implementation (a 4x cheaper attention map than the paper's M = N; set
``pool_keys=False`` for the paper's form). The key/query width C/8 and value width C/2 follow
the same implementations (the paper writes C/8 for all three). The 1x1 convolutions are
spectrally normalized when the network is.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.models import layers

Array = jax.Array


class SelfAttention(nn.Module):
  """``y = x + gamma * attention(x)``; see the module docstring.

  Attributes:
    spectral_norm: spectrally normalize the four 1x1 convolutions.
    pool_keys: 2x2 max-pool the keys and values (StudioGAN / BigGAN) or not (the paper).
    init: weight initializer name (`ganjax.models.layers.INITIALIZERS`).
  """

  spectral_norm: bool = False
  pool_keys: bool = True
  weight_init: str = "ortho"
  dtype: Any = None
  conv_backend: str = "auto"  # convolution kernels, `ganjax.ops.conv.BACKENDS`

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b, h, w, c = x.shape
    if c < 8:
      raise ValueError(f"SelfAttention needs at least 8 channels, got {c}")
    conv = lambda features, name: layers.conv(
        features, 1, name=name, spectral_norm=self.spectral_norm, init=self.weight_init,
        use_bias=False, dtype=self.dtype, backend=self.conv_backend)
    theta = conv(c // 8, "theta")(x).reshape(b, h * w, c // 8)
    phi = conv(c // 8, "phi")(x)
    g = conv(c // 2, "g")(x)
    if self.pool_keys:
      phi = nn.max_pool(phi, (2, 2), strides=(2, 2))
      g = nn.max_pool(g, (2, 2), strides=(2, 2))
    phi = phi.reshape(b, -1, c // 8)
    g = g.reshape(b, -1, c // 2)
    beta = jax.nn.softmax(jnp.einsum("bnc,bmc->bnm", theta, phi), axis=-1)
    o = jnp.einsum("bnm,bmc->bnc", beta, g).reshape(b, h, w, c // 2)
    o = conv(c, "out")(o)
    gamma = self.param("gamma", nn.initializers.zeros_init(), (), jnp.float32)
    return x + gamma.astype(o.dtype) * o
