"""BigGAN on CIFAR-10 with DiffAugment 'translation,cutout'.

Zhao, Liu, Lin, Zhu, Han, "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020, in the setting of its CIFAR-10 BigGAN script (mit-han-lab/data-efficient-gans,
DiffAugment-biggan-cifar/scripts/DiffAugment-biggan-cifar10.sh, on BigGAN-PyTorch): policy
``translation,cutout`` on every image the discriminator sees (real and generated, in D's and in
G's update), batch 50, 4 D updates per G update, Adam lr 2e-4 for both players with BigGAN-
PyTorch's default beta1 = 0, beta2 = 0.999, N(0, 0.02) init, no self-attention (G_attn 0,
D_attn 0), hinge loss, EMA of the generator weights (decay 0.9999) from step 1000. The script
trains 1000 epochs of the multi-epoch sampler, each G step taking batch * num_D_steps = 200
real images: 1000 * 50000 / 200 = 250k G updates.

Network: ganjax's `biggan` of configs/biggan.py (StudioGAN's BigGAN-Mod: hierarchical z_dim 80,
shared class embedding of 128, G width 384, D width 192, spectral norm on both, projection D)
without its attention. The reference trains BigGAN-PyTorch's CIFAR network (z_dim 128, no
shared embedding or hierarchical z, G_ch = D_ch = 64) and mirrors the training images at
random (``--mirror_augment``), which ganjax's GAN input pipeline does not do.
"""

from ganjax.configs import biggan, default


def get_config():
  config = biggan.get_config()
  config.diffaugment = "translation,cutout"
  config.batch_size = 50
  config.n_critic = 4
  config.num_train_steps = 250_000
  config.generator.update(attention_resolution=0, weight_init="N02")
  config.discriminator.update(attention_resolution=0, weight_init="N02")
  config.g_optimizer = default.optimizer("adam", 2e-4, b1=0.0, b2=0.999)
  config.d_optimizer = default.optimizer("adam", 2e-4, b1=0.0, b2=0.999)
  config.ema_decay = 0.9999
  config.ema_start_step = 1000
  return config
