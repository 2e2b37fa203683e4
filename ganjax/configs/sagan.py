"""SAGAN on CIFAR-10: SNGAN's ResNets with self-attention and spectral norm in both players.

Zhang, Goodfellow, Metaxas, Odena, "Self-Attention Generative Adversarial Networks", ICML
2019, in the form of PyTorch-StudioGAN's CIFAR-10 SAGAN config (src/configs/CIFAR10/SAGAN.yaml):
the ResNet networks of configs/sngan.py (G width 256, D width 128, z_dim 128) with spectral norm
on G and D, self-attention after the generator block that outputs 16x16 (attn_g_loc [2]) and
after the discriminator block that outputs 16x16 (attn_d_loc [1]), conditional batch norm and a
projection discriminator, hinge loss, orthogonal init, batch 64, Adam lr 2e-4 with beta1 = 0.5,
beta2 = 0.999 (StudioGAN's defaults), 5 D updates per G update, 100k G updates.

EMA of the generator weights (decay 0.9999 from step 1000, sampled and evaluated with the EMA
weights) as StudioGAN's BigGAN-Mod config; StudioGAN's SAGAN.yaml itself leaves it off
(``--config.ema_decay=0`` for that). The paper's own ImageNet setting (TTUR: lr 1e-4 for G,
4e-4 for D, beta1 = 0, beta2 = 0.9, one D update) is an override away.
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
      name="resnet", z_dim=128, width=256, spectral_norm=True, attention_resolution=16,
      weight_init="ortho"))
  config.discriminator = ml_collections.ConfigDict(dict(
      name="resnet", width=128, spectral_norm=True, condition="projection",
      attention_resolution=16, norm="none", dropout=0.0, weight_init="ortho"))
  config.g_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  config.d_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  config.ema_decay = 0.9999
  config.ema_start_step = 1000
  return config
