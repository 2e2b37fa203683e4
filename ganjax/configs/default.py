"""The default config: every key a config can have, declared once, with what it means.

Every config in this folder starts from `get_config()` and changes what its paper says; any key
can be overridden on the command line (``--config.batch_size=128``,
``--config.g_optimizer.learning_rate=1e-4``), and a key that is not declared here is an error.
Sections whose keys depend on a choice hold the options of that choice, documented and checked
where it is defined: ``generator`` / ``discriminator`` the fields of the named model
(`ganjax.models`), ``g_optimizer`` / ``d_optimizer`` / ``optimizer`` the options of the named
optimizer and schedule (`ganjax.gan.optim`).
"""

from __future__ import annotations

import ml_collections


def optimizer(name: str = "adam", learning_rate: float = 2e-4, **options
              ) -> ml_collections.ConfigDict:
  """An optimizer section (see `ganjax.gan.optim`): name, learning rate, schedule and options."""
  return ml_collections.ConfigDict(
      dict(name=name, learning_rate=learning_rate, schedule="constant", **options))


def get_config() -> ml_collections.ConfigDict:
  """The base config: a DCGAN on CIFAR-10 with the non-saturating loss."""
  c = ml_collections.ConfigDict()

  # Run.
  c.task = "gan"                  # 'gan' (a population when population.size > 1) or
                                  # 'classifier' (ganjax.tasks)
  c.seed = 0                      # seeds parameters, latents, data order
  c.num_train_steps = 100_000     # generator updates (gan)
  c.dtype = "float32"             # activation dtype of the networks

  # Data (see ganjax.data): 'cifar10' / any tfds name, 'folder:PATH', 'synthetic[:N]'.
  c.dataset = "cifar10"
  c.split = "train"               # the training split
  c.test_split = "test"           # held-out split: classifier accuracy, ACGAN test accuracy
  c.data_dir = ""                 # tfds data_dir ('' = tfds default)
  c.image_size = 32
  c.batch_size = 64               # global batch, split over all devices
  c.conditional = False           # give the class label to both players

  # Models (see ganjax.models): the name plus the module's fields.
  c.generator = ml_collections.ConfigDict(dict(name="dcgan", z_dim=128, width=64))
  c.discriminator = ml_collections.ConfigDict(dict(name="dcgan", width=64))

  # Objective and regularizers (see ganjax.gan.losses, ganjax.gan.regularizers).
  c.loss = "nonsaturating"
  c.n_critic = 1                  # discriminator updates per generator update
  c.gradient_penalty = 0.0        # WGAN-GP lambda (0 = off)
  c.r1_penalty = 0.0              # R1 gamma (0 = off)
  c.weight_clip = 0.0             # WGAN weight clipping bound c (0 = off)
  c.aux_classifier_weight = 0.0   # ACGAN class-loss weight (0 = off)
  c.aux_classifier_on_fake = True  # D's class loss also on generated images (Odena et al.)
  c.label_smoothing = 0.0         # one-sided: real targets 1 - s in the BCE D loss (0 = off)
  # Critic updates as straight-line code (True) or one lax.scan (False); None: a scan on
  # oneDNN's convolutions when n_critic > 1, straight-line otherwise (gan.build.critic_unrolled;
  # the configs whose scan was measured as fast as straight-line code set None).
  c.unroll_critic = ml_collections.FieldReference(True, field_type=bool)

  # Data-efficient training (see ganjax.gan.steps, ganjax.diffaug, ganjax.gan.regularizers):
  # differentiable augmentation of every image D sees (real and generated), LeCam, bCR, zCR.
  c.diffaugment = ""              # DiffAugment policy, e.g. 'color,translation,cutout' ('' = off)
  c.ada_target = 0.0              # ADA target of E[sign(D(real))], e.g. 0.6 (0 = p does not adapt)
  c.ada_initial_p = 0.0           # ADA's initial p (ADA is on when this or ada_target is > 0)
  c.ada_interval = 4              # steps between adjustments of p
  c.ada_speed_images = 500_000    # real images D scores for p to move by 1 (ada_kimg * 1000)
  c.ada_preset = "bgc"            # ADA pipeline: blit, geom, color, bg, bgc
  c.lecam_weight = 0.0            # LeCam lambda (0 = off)
  c.lecam_ema_decay = 0.99        # decay of the EMAs of D's mean outputs on real / generated
  c.lecam_start_step = 0          # EMAs copy the outputs before it, LeCam applies after it
  c.bcr_real_weight = 0.0         # bCR lambda_real: ||D(x) - D(T(x))||^2 (0 = off)
  c.bcr_fake_weight = 0.0         # bCR lambda_fake: ||D(G(z)) - D(T(G(z)))||^2 (0 = off)
  c.zcr_dis_weight = 0.0          # zCR lambda_dis: ||D(G(z)) - D(G(z + dz))||^2 in D (0 = off)
  c.zcr_gen_weight = 0.0          # zCR lambda_gen: -||G(z) - G(z + dz)||^2 in G (0 = off)
  c.zcr_sigma = 0.05              # zCR: dz ~ N(0, sigma^2 I)

  # Optimizers (see ganjax.gan.optim): name, learning_rate, schedule, then the options of the
  # named optimizer and schedule, which each config sets (Adam's b1 / b2, ...).
  c.g_optimizer = optimizer("adam", 2e-4)
  c.d_optimizer = optimizer("adam", 2e-4)

  # Exponential moving average of the generator weights (0 = off).
  c.ema_decay = 0.0
  c.ema_start_step = 0

  # Outputs.
  c.log_every_steps = 50          # console line and TensorBoard scalars
  c.sample_every_steps = 500      # sample grid PNG and TensorBoard image (gan)
  c.checkpoint_every_steps = 1000  # (gan; a classifier checkpoints after every epoch)
  c.keep_checkpoints = 3          # how many recent checkpoints to keep
  # Sample quality during training (see ganjax.eval.in_training and ganjax.eval.metrics), and
  # the best checkpoint; runs with an auxiliary classifier also log their test-split accuracy
  # (ganjax.classifier.accuracy).
  c.eval_every_steps = 0          # evaluate every k steps and at the end (0 = off)
  c.eval_fid = True               # the Inception metrics at each evaluation (needs the weights)
  c.eval_metrics = "fid,is"       # of fid, is, kid, pr, dc (KID / PR / DC keep the features of
                                  # the reference and the samples in host memory)
  c.eval_best_metric = "fid"      # keep the best checkpoint by this number (fid, kid: lower;
                                  # inception_score, precision, recall, density, coverage:
                                  # higher) in WORKDIR/best_<name>/ ('' = keep none)
  c.eval_num_samples = 10_000     # generated images per evaluation
  c.eval_batch_size = 250         # sampling and test-split batch (rounded to the device
                                  # count); the Inception network takes 50 images per device
  c.eval_class_num_images = 0     # test images for the ACGAN test accuracy (0 = the split)
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

  # The classifier task (task='classifier', see ganjax.classifier): the discriminator alone.
  c.num_epochs = 100              # passes over the training split
  c.optimizer = optimizer("adam", 1e-4)  # the classifier's optimizer (as above)
  # Augmentation in the input pipeline (see ganjax.data.augment): a random crop after padding
  # by crop_padding pixels ('constant' zeros or 'reflect'), and a horizontal flip.
  c.augment = ml_collections.ConfigDict(dict(crop_padding=0, padding_mode="constant",
                                             flip=False))

  # Several hosts (see ganjax.runtime.distributed): jax.distributed.initialize before anything
  # else. Empty values ('', 0, -1) are detected by JAX from the cluster (SLURM, Open MPI, TPU
  # pods).
  c.distributed = ml_collections.ConfigDict(dict(
      enabled=False,
      coordinator_address="",     # 'host:port' of process 0
      num_processes=0,
      process_id=-1,
      cpu_collectives="gloo",     # cross-process collectives on CPU devices ('' = JAX default)
  ))
  return c
