"""Defaults shared by every config in configs/: each key, what it means.

A config file in configs/ starts from `get_config()` here and changes what its paper says. Any
key can be overridden on the command line: ``--config.batch_size=128``,
``--config.g_optimizer.learning_rate=1e-4``.
"""

from __future__ import annotations

import ml_collections


def optimizer(name: str = "adam", learning_rate: float = 2e-4, **options
              ) -> ml_collections.ConfigDict:
  """An optimizer section (see `ganjax.optim`): name, learning rate, schedule and options."""
  return ml_collections.ConfigDict(
      dict(name=name, learning_rate=learning_rate, schedule="constant", **options))


def get_config() -> ml_collections.ConfigDict:
  """The base config: a DCGAN on CIFAR-10 with the non-saturating loss."""
  c = ml_collections.ConfigDict()

  # Run.
  c.seed = 0                      # seeds parameters, latents, data order
  c.num_train_steps = 100_000     # generator updates
  c.dtype = "float32"             # activation dtype of both players

  # Data (see ganjax.data): 'cifar10' / any tfds name, 'folder:PATH', 'synthetic[:N]'.
  c.dataset = "cifar10"
  c.split = "train"
  c.data_dir = ""                 # tfds data_dir ('' = tfds default)
  c.image_size = 32
  c.batch_size = 64               # global batch, split over all devices
  c.conditional = False           # give the class label to both players

  # Models (see ganjax.models): name plus the module's fields.
  c.generator = ml_collections.ConfigDict(dict(name="dcgan", z_dim=128, width=64))
  c.discriminator = ml_collections.ConfigDict(dict(name="dcgan", width=64, norm="batch"))

  # Objective and regularizers (see ganjax.losses, ganjax.regularizers).
  c.loss = "nonsaturating"
  c.n_critic = 1                  # discriminator updates per generator update
  c.gradient_penalty = 0.0        # WGAN-GP lambda (0 = off)
  c.r1_penalty = 0.0              # R1 gamma (0 = off)
  c.weight_clip = 0.0             # WGAN weight clipping bound c (0 = off)
  c.aux_classifier_weight = 0.0   # ACGAN class-loss weight (0 = off)
  c.aux_classifier_on_fake = True  # D's class loss also on generated images (Odena et al.)
  c.label_smoothing = 0.0         # one-sided: real targets 1 - s in the BCE D loss (0 = off)
  c.unroll_critic = True          # critic updates as straight-line code, not a lax.scan

  # Optimizers (see ganjax.optim).
  c.g_optimizer = optimizer("adam", 2e-4, b1=0.5, b2=0.999)
  c.d_optimizer = optimizer("adam", 2e-4, b1=0.5, b2=0.999)

  # Exponential moving average of the generator weights (0 = off).
  c.ema_decay = 0.0
  c.ema_start_step = 0

  # Outputs.
  c.log_every_steps = 50          # console line and TensorBoard scalars
  c.sample_every_steps = 500      # sample grid PNG and TensorBoard image
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3          # how many recent checkpoints to keep
  # FID / IS during training (see ganjax.eval.in_training), and the best-FID checkpoint; runs
  # with an auxiliary classifier also log its test-split accuracy (ganjax.class_accuracy).
  c.eval_every_steps = 0          # evaluate every k steps and at the end (0 = off)
  c.eval_fid = True               # FID / IS at each evaluation (needs the Inception weights)
  c.eval_num_samples = 10_000     # generated images per evaluation
  c.eval_batch_size = 250         # sampling batch (rounded to the device count); the
                                  # Inception network takes 50 images per device at a time
  c.inception_path = ""           # converted weights ('' = $GANJAX_INCEPTION_WEIGHTS or
                                  # ~/.cache/ganjax/fid_inception_v3.npz)
  c.fid_reference = ""            # 'DATASET:SPLIT' ('' = the training data set and split)
  c.fid_reference_num_images = 0  # reference images (0 = the whole split)

  # Population (see ganjax.population): K GANs in one jitted step, each with seed + i.
  c.population = ml_collections.ConfigDict(dict(
      size=0,                     # number of members (0 or 1 = a single run)
      sweep="",                   # per-member values: "KEY=V0,V1,...;KEY=..." (K values each)
      same_batches=False,         # all members see seed's batches (else each its own order)
  ))

  # Several hosts (see ganjax.distributed): jax.distributed.initialize before anything else.
  # Empty values ('', 0, -1) are detected by JAX from the cluster (SLURM, Open MPI, TPU pods).
  c.distributed = ml_collections.ConfigDict(dict(
      enabled=False,
      coordinator_address="",     # 'host:port' of process 0
      num_processes=0,
      process_id=-1,
      cpu_collectives="gloo",     # cross-process collectives on CPU devices ('' = JAX default)
  ))
  return c
