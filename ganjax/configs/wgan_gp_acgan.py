"""WGAN-GP with an auxiliary classifier (ACGAN) on CIFAR-10.

The critic is the eight-convolution network of `ganjax.models.critic` (196 channels, layer norm,
LeakyReLU 0.2, strides 1-2-1-2-1-1-1-2, a critic output and 10 class logits): the WGAN-GP
ACGAN discriminator of the common PyTorch CIFAR-10 exercise. Layer norm instead of batch norm
because the gradient penalty is per example (Gulrajani et al., "Improved Training of
Wasserstein GANs", NeurIPS 2017, section 4). Objective: the Wasserstein loss with gradient
penalty lambda = 10 plus the ACGAN class cross-entropy (Odena et al., ICML 2017) with weight 1
on real and generated images for D and on generated images for G.

Hyperparameters of Gulrajani et al., Algorithm 1: n_critic = 5, Adam lr 1e-4, beta1 = 0,
beta2 = 0.9, batch 64; 100k generator updates. The generator is the conditional DCGAN
generator (one-hot label concatenated to z).
"""

import ml_collections

from ganjax.configs import default


def get_config():
  config = default.get_config()
  config.conditional = True
  config.loss = "wasserstein"
  config.gradient_penalty = 10.0
  config.aux_classifier_weight = 1.0
  config.aux_classifier_on_fake = True
  config.batch_size = 64
  config.n_critic = 5
  config.num_train_steps = 100_000
  config.generator.update(name="dcgan", z_dim=128, width=64)
  config.discriminator = ml_collections.ConfigDict(dict(
      name="acgan_critic", width=196, norm="layer", negative_slope=0.2, dropout=0.0,
      condition="ac"))
  config.g_optimizer = default.optimizer("adam", 1e-4, b1=0.0, b2=0.9)
  config.d_optimizer = default.optimizer("adam", 1e-4, b1=0.0, b2=0.9)
  return config
