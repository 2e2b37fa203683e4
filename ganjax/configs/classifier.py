"""The WGAN-GP ACGAN critic trained alone as a CIFAR-10 classifier (``task = 'classifier'``).

Network: the eight-convolution critic of `ganjax.models.critic` (``acgan_critic``): 3x3
convolutions of 196 channels with strides 1-2-1-2-1-1-1-2, each followed by layer norm and
LeakyReLU 0.2, a max over positions, then the real/fake output and 10 class logits; the CIFAR-10
discriminator of the WGAN-GP experiments of Gulrajani et al., "Improved Training of Wasserstein
GANs", NeurIPS 2017, with the auxiliary classifier of Odena et al., ICML 2017, as in the PyTorch
exercise that trains this network alone as a classifier before training it against a
generator. Only the class logits are trained here: mean softmax cross-entropy
(`ganjax.classifier`).

Hyperparameters of that exercise: Adam lr 1e-4 (betas 0.9, 0.999), batch 128, 100 epochs, the
learning rate divided by 10 part-way (here the 'step' schedule: by 10 at half of the run; the
exercise divides at epochs 50 and 75). Augmentation in the input pipeline (`ganjax.data.augment`):
a random 32x32 crop after 4-pixel zero padding (``padding_mode='constant'``, as torchvision's
``RandomCrop(32, padding=4)``; ``'reflect'`` mirrors instead) and a horizontal flip with
probability 1/2 (the exercise uses a random resized crop and colour jitter instead of the
padded crop).

Smaller runs: ``--config.discriminator.width=64 --config.num_epochs=10``.
"""

import ml_collections

from ganjax.configs import default


def get_config():
  c = default.get_config()
  c.task = "classifier"

  # Data (see ganjax.data): trains on `split`, reports accuracy on `test_split` every epoch.
  c.dataset = "cifar10"
  c.split = "train"
  c.test_split = "test"
  c.batch_size = 128
  c.num_epochs = 100
  c.augment.update(crop_padding=4, padding_mode="constant", flip=True)

  # The network: any discriminator with the auxiliary-classifier head.
  c.discriminator = ml_collections.ConfigDict(dict(
      name="acgan_critic", width=196, norm="layer", negative_slope=0.2, dropout=0.0,
      condition="ac"))
  c.optimizer = default.optimizer("adam", 1e-4, b1=0.9, b2=0.999, decay_every=0.5,
                                  decay_factor=0.1)
  c.optimizer.schedule = "step"

  # Outputs.
  c.log_every_steps = 100        # console line and TensorBoard train loss / accuracy
  c.eval_batch_size = 500        # test-split evaluation batch (a multiple of the devices)
  c.keep_checkpoints = 3         # a checkpoint after every epoch; the last 3 kept
  return c
