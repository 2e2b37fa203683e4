"""WGAN-GP on CIFAR-10.

Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville, "Improved Training of Wasserstein GANs",
NeurIPS 2017, Algorithm 1 defaults: gradient penalty lambda = 10, n_critic = 5, Adam with
learning rate 1e-4, beta1 = 0, beta2 = 0.9, batch 64, the Wasserstein loss. The critic is the
DCGAN discriminator with a linear output and layer norm instead of batch norm (the paper
forbids batch norm in the critic, since the penalty is per example).
"""

from ganjax.configs import default


def get_config():
  config = default.get_config()
  config.loss = "wasserstein"
  config.batch_size = 64
  config.n_critic = 5
  config.unroll_critic = None  # a scan on oneDNN: as fast, compiles 2-3x faster
  config.gradient_penalty = 10.0
  config.num_train_steps = 100_000
  config.generator.update(name="dcgan", z_dim=128, width=64)
  config.discriminator.update(name="dcgan", width=64, norm="layer")
  config.g_optimizer = default.optimizer("adam", 1e-4, b1=0.0, b2=0.9)
  config.d_optimizer = default.optimizer("adam", 1e-4, b1=0.0, b2=0.9)
  return config
