"""BigGAN on CIFAR-10 with adaptive discriminator augmentation (ADA).

Karras, Aittala, Hellsten, Laine, Lehtinen, Aila, "Training Generative Adversarial Networks
with Limited Data", NeurIPS 2020, in PyTorch-StudioGAN's src/configs/CIFAR10/BigGAN-Mod-ADA.yaml:
the BigGAN-Mod network and optimizer of configs/biggan.py (batch 64, Adam lr 2e-4, beta1 = 0.5,
beta2 = 0.999, 5 D updates per G update, EMA 0.9999 from step 1000) with

* ADA's 'bgc' pipeline (ada_aug_type bgc: pixel blitting, general geometric and colour
  transformations) on every image D sees, real and generated;
* p starting at 0 (ada_initial_augment_p 0), adjusted every 4 steps (ada_interval 4) towards
  E[sign(D(x_real))] = 0.6 (ada_target), moving by 1 per 500k real images D scores (ada_kimg
  500; StudioGAN counts every critic update's real batch, as `ganjax.gan.steps` does);
* StudioGAN's ``logistic`` loss, the non-saturating loss (softplus) of stylegan2-ada, instead
  of BigGAN's hinge;
* 400k G updates (total_steps 400000). StudioGAN also switches its random flips of the training
  images off here (apply_rflip False); ganjax's GAN input pipeline never flips.
"""

from ganjax.configs import biggan


def get_config():
  config = biggan.get_config()
  config.loss = "nonsaturating"
  config.num_train_steps = 400_000
  config.ada_target = 0.6
  config.ada_initial_p = 0.0
  config.ada_interval = 4
  config.ada_speed_images = 500_000
  config.ada_preset = "bgc"
  return config
