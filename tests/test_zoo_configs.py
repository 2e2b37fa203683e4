"""Every config of the GAN family trains on tiny synthetic data, samples one grid row per class,
and builds the documented architecture at full size."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ganjax import data, models, tasks
from ganjax.data import images
from ganjax.gan import build as experiment, trainer as gan_trainer
from ganjax.errors import ConfigError
from tests.tiny import load_config, tiny_config

# One critic update per step keeps compilation short here; the loop over n_critic critic updates
# is the same code for every config and is covered by tests/test_steps.py. acgan trains in
# tests/test_zoo_steps.py, cgan through the trainer below.
ZOO = ["wgan_gp_acgan", "sngan", "sagan", "biggan"]


@pytest.mark.slow
def test_trainer_writes_one_grid_row_per_class(tmp_path):
  config = tiny_config("cgan", n_critic=1, num_train_steps=2, log_every_steps=1,
                       sample_every_steps=2, checkpoint_every_steps=2)
  state = tasks.train_and_evaluate(config, str(tmp_path))  # raises on a non-finite loss
  assert int(state.step) == 2
  grid = np.asarray(Image.open(os.path.join(tmp_path, "samples", "step_2.png")))
  side = config.image_size
  assert grid.shape == (10 * (side + 2) + 2, 8 * (side + 2) + 2, 3)  # 10 classes x 8 samples


@pytest.mark.parametrize("name", ZOO)
def test_config_trains_two_steps_and_samples_each_class(name):
  config = tiny_config(name, n_critic=1)
  assert config.conditional
  dataset = data.load_dataset(config.dataset, "train", config.image_size)
  gan = experiment.build_gan(config, experiment.DataSpec(dataset.image_shape,
                                                         dataset.class_names))
  state = jax.jit(gan.init)(jax.random.PRNGKey(0))
  step = jax.jit(gan.train_step())
  for i in range(2):
    batch = data.training_batch(dataset, seed=0, step=i, batch_size=config.batch_size,
                                n_critic=1)
    state, metrics = step(state, batch)
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  if config.aux_classifier_weight:
    assert {"d_class_loss", "g_class_loss", "d_real_class_acc"} <= set(metrics)
  assert (state.ema_params is not None) == bool(config.ema_decay)
  z, labels, rows = gan_trainer.fixed_sample_inputs(0, gan.generator)
  samples = jax.jit(gan.sample_fn())(state.sampling_variables, z, labels)
  assert rows == 10 and samples.shape == (80,) + dataset.image_shape
  assert np.all(np.isfinite(np.asarray(samples))) and float(jnp.abs(samples).max()) <= 1
  np.testing.assert_array_equal(np.asarray(labels).reshape(10, 8),
                                np.repeat(np.arange(10)[:, None], 8, axis=1))  # row = class
  grid = images.make_grid(np.asarray(samples), rows=rows)
  assert grid.shape[0] == 10 * (config.image_size + 2) + 2


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# Parameter counts of the full-size CIFAR-10 networks (conditional, 10 classes): the same as
# PyTorch-StudioGAN's SNGAN / SAGAN / BigGAN-Mod CIFAR-10 models (models/resnet.py,
# models/big_resnet.py; see docs/ZOO_NOTES.md).
FULL_SIZE_COUNTS = {
    "sngan": (4_304_387, 1_055_105),
    "sagan": (4_386_308, 1_075_586),
    "biggan": (9_416_196, 2_415_170),
}


@pytest.mark.parametrize("name", sorted(FULL_SIZE_COUNTS))
def test_full_size_parameter_counts(name):
  config = load_config(name)
  spec = experiment.DataSpec((32, 32, 3), tuple(f"c{i}" for i in range(10)))
  gan = experiment.build_gan(config, spec)
  shapes = jax.eval_shape(gan.init, jax.random.PRNGKey(0))
  assert (_count(shapes.generator.params),
          _count(shapes.discriminator.params)) == FULL_SIZE_COUNTS[name]


def _init(gan):
  return jax.eval_shape(gan.init, jax.random.PRNGKey(0))


def test_attention_resolution_must_exist():
  config = tiny_config("sagan", **{"discriminator.attention_resolution": 8})
  gan = experiment.build_gan(config, experiment.DataSpec((8, 8, 3), tuple("abcdefghij")))
  with pytest.raises(ConfigError, match=r"attention_resolution=8 is not the output side of "
                                        r"any block; choose one of \[4\]"):
    _init(gan)


def test_biggan_z_must_split_evenly():
  config = tiny_config("biggan", **{"generator.z_dim": 9})
  gan = experiment.build_gan(config, experiment.DataSpec((8, 8, 3), tuple("abcdefghij")))
  with pytest.raises(ConfigError, match="z_dim=9 is not divisible by 2"):
    _init(gan)


def test_unknown_condition_is_a_config_error():
  d = models.build_discriminator(dict(name="resnet", condition="proj"), image_size=8,
                                 num_classes=10)
  with pytest.raises(ConfigError, match="unknown discriminator condition 'proj'"):
    jax.eval_shape(d.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)),
                   jnp.zeros((1,), jnp.int32), train=False)
