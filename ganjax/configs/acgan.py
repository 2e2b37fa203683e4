"""ACGAN on CIFAR-10: DCGAN with an auxiliary classifier on the discriminator.

Odena, Olah, Shlens, "Conditional Image Synthesis with Auxiliary Classifier GANs", ICML 2017:
G(z, c) gets the class (one-hot, concatenated to z); D outputs both a source (real/fake) logit
and class logits. D maximizes L_S + L_C and G maximizes L_C - L_S, with
L_C = log P(C = c | X) over real images and generated ones (eq. 2-3); here as minimized
losses: D: adversarial loss + w * (CE(real) + CE(fake)), G: adversarial loss + w * CE(fake),
w = ``aux_classifier_weight`` = 1 (StudioGAN's cond_lambda = 1). Set
``--config.aux_classifier_on_fake=False`` for PyTorch-StudioGAN's form, whose D class loss
covers real images only.

Networks: the DCGAN generator and discriminator of configs/dcgan.py with the classifier head
(``condition='ac'``). Hyperparameters of PyTorch-StudioGAN's CIFAR-10 DCGAN config: batch 64,
Adam lr 2e-4, beta1 = 0.5, beta2 = 0.999, 2 discriminator updates per generator update, 200k
generator updates, the non-saturating loss, z_dim 128.
"""

from ganjax.configs import default


def get_config():
  config = default.get_config()
  config.conditional = True
  config.loss = "nonsaturating"
  config.aux_classifier_weight = 1.0
  config.aux_classifier_on_fake = True
  config.batch_size = 64
  config.n_critic = 2
  config.num_train_steps = 200_000
  config.generator.update(name="dcgan", z_dim=128, width=64)
  config.discriminator.update(name="dcgan", width=64, norm="batch", condition="ac")
  config.g_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  config.d_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  return config
