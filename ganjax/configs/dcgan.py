"""DCGAN on CIFAR-10.

Radford, Metz, Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016: Adam with learning rate 2e-4 and beta1 = 0.5, batch
norm in both players, the non-saturating loss, z ~ N(0, I). Batch 64 and z_dim = 128 follow
PyTorch-StudioGAN's CIFAR-10 DCGAN config; one discriminator update per generator update.
"""

from ganjax.configs import default


def get_config():
  config = default.get_config()
  config.loss = "nonsaturating"
  config.batch_size = 64
  config.n_critic = 1
  config.num_train_steps = 100_000
  config.generator.update(name="dcgan", z_dim=128, width=64)
  config.discriminator.update(name="dcgan", width=64, norm="batch")
  config.g_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  config.d_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  return config
