"""SNGAN on CIFAR-10: ResNet players, spectral norm in the discriminator, hinge loss.

Miyato, Kataoka, Koyama, Yoshida, "Spectral Normalization for Generative Adversarial
Networks", ICLR 2018, in the class-conditional form of PyTorch-StudioGAN's CIFAR-10 SNGAN config
(src/configs/CIFAR10/SNGAN.yaml: conditional batch norm in G, projection discriminator of
Miyato & Koyama, ICLR 2018, spectral norm on D, hinge loss). Networks as StudioGAN's
``models/resnet.py`` for 32x32: G width 256 (4 * g_conv_dim 64), D width 128 (2 * d_conv_dim
64), z_dim 128, orthogonal init; batch 64; 5 D updates per G update; 100k G updates.

Optimizer: the paper's ResNet setting (Miyato et al., table 1 setting C / appendix B: Adam
lr 2e-4, beta1 = 0, beta2 = 0.9, n_dis = 5, the learning rate decayed linearly to 0 over
training; the same as WGAN-GP's ResNet). StudioGAN's config instead keeps lr 2e-4 constant
with beta1 = 0.5, beta2 = 0.999: ``--config.g_optimizer.b1=0.5 --config.g_optimizer.b2=0.999
--config.g_optimizer.schedule=constant`` (and the same for d_optimizer).
"""

import ml_collections

from ganjax.configs import default


def _adam_linear_decay():
  section = default.optimizer("adam", 2e-4, b1=0.0, b2=0.9, decay_start=0.0,
                                     end_factor=0.0)
  section.schedule = "linear"
  return section


def get_config():
  config = default.get_config()
  config.conditional = True
  config.loss = "hinge"
  config.batch_size = 64
  config.n_critic = 5
  config.num_train_steps = 100_000
  config.generator = ml_collections.ConfigDict(dict(
      name="resnet", z_dim=128, width=256, spectral_norm=False, attention_resolution=0,
      weight_init="ortho"))
  config.discriminator = ml_collections.ConfigDict(dict(
      name="resnet", width=128, spectral_norm=True, condition="projection",
      attention_resolution=0, norm="none", dropout=0.0, weight_init="ortho"))
  config.g_optimizer = _adam_linear_decay()
  config.d_optimizer = _adam_linear_decay()
  return config
