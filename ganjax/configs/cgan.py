"""Conditional DCGAN (cGAN) on CIFAR-10: the class label is an input of both players.

Mirza & Osindero, "Conditional Generative Adversarial Nets", 2014: G(z, y) and D(x, y). Here the
generator sees the one-hot label concatenated to z and the discriminator sees one-hot class
planes concatenated to the image channels (``condition='input'``), on the DCGAN networks of
configs/dcgan.py (Radford et al., ICLR 2016). Hyperparameters of PyTorch-StudioGAN's CIFAR-10
DCGAN config (src/configs/CIFAR10/DCGAN.yaml and its defaults): batch 64, Adam lr 2e-4 with
beta1 = 0.5, beta2 = 0.999 for both players, 2 discriminator updates per generator update,
200k generator updates, the non-saturating loss, z_dim 128.
"""

from ganjax.configs import default


def get_config():
  config = default.get_config()
  config.conditional = True
  config.loss = "nonsaturating"
  config.batch_size = 64
  config.n_critic = 2
  config.num_train_steps = 200_000
  config.generator.update(name="dcgan", z_dim=128, width=64)
  config.discriminator.update(name="dcgan", width=64, norm="batch", condition="input")
  config.g_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  config.d_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  return config
