"""SNGAN on CIFAR-10 with DiffAugment and LeCam regularization.

PyTorch-StudioGAN's src/configs/CIFAR10/SNGAN-DiffAug-LeCam.yaml: the SNGAN of
configs/sngan.py (Miyato et al., ICLR 2018: ResNet G width 256 with conditional batch norm,
ResNet D width 128 with spectral norm and projection, hinge loss, batch 64, 5 D updates per G
update) with

* DiffAugment (Zhao et al., NeurIPS 2020) on every image D sees, StudioGAN's ``diffaug`` type:
  the full policy ``color,translation,cutout`` (its ``apply_diffaug`` default);
* LeCam regularization (Tseng et al., "Regularizing Generative Adversarial Networks under
  Limited Data", CVPR 2021) with lecam_lambda 0.3, EMA decay 0.99 and lecam_ema_start_iter
  1000 (the EMAs follow D's mean outputs from step 1000; the regularizer applies after it);
* StudioGAN's optimizer defaults, which this config follows rather than configs/sngan.py's
  paper setting: Adam lr 2e-4 for both players, beta1 = 0.5, beta2 = 0.999, constant;
* 200k G updates (total_steps 200000).
"""

from ganjax.configs import default, sngan


def get_config():
  config = sngan.get_config()
  config.diffaugment = "color,translation,cutout"
  config.lecam_weight = 0.3
  config.lecam_ema_decay = 0.99
  config.lecam_start_step = 1000
  config.num_train_steps = 200_000
  config.g_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  config.d_optimizer = default.optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  return config
