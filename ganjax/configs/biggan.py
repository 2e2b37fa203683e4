"""BigGAN on CIFAR-10.

Brock, Donahue, Simonyan, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis", ICLR 2019, in the 32x32 form of PyTorch-StudioGAN's CIFAR-10 BigGAN-Mod config
(src/configs/CIFAR10/BigGAN-Mod.yaml, models/big_resnet.py): z_dim 80 split hierarchically
over the dense layer and the three generator blocks (20 each), a shared class embedding of 128
concatenated to each block's chunk and mapped linearly to the conditional batch norms' gains
and biases, g_conv_dim 96 (generator width 384 = 4 * 96), d_conv_dim 96 (discriminator width
192 = 2 * 96), spectral norm on both players, self-attention at 16x16 in both (attn_g_loc [2],
attn_d_loc [1]), projection discriminator, orthogonal init, hinge loss, EMA of the generator
weights with decay 0.9999 from step 1000 (samples and evaluation use the EMA weights).
StudioGAN's defaults for the rest: batch 64, Adam lr 2e-4 with beta1 = 0.5, beta2 = 0.999 for
both players, 5 D updates per G update, 100k G updates.
"""

import ml_collections

from ganjax.configs import default


def get_config():
  config = default.get_config()
  config.conditional = True
  config.loss = "hinge"
  config.batch_size = 64
  config.n_critic = 5
  config.num_train_steps = 100_000
  config.generator = ml_collections.ConfigDict(dict(
      name="biggan", z_dim=80, width=384, shared_dim=128, spectral_norm=True,
      attention_resolution=16, weight_init="ortho"))
  config.discriminator = ml_collections.ConfigDict(dict(
      name="resnet", width=192, spectral_norm=True, condition="projection",
      attention_resolution=16, norm="none", dropout=0.0, weight_init="ortho"))
  config.g_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  config.d_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  config.ema_decay = 0.9999
  config.ema_start_step = 1000
  return config
