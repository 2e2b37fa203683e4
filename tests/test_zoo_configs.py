"""Every config of the GAN family trains end to end on tiny synthetic data, writes one grid row
per class when conditional, and builds the documented architecture at full size."""

import os

import jax
import numpy as np
import pytest
from PIL import Image

from ganjax import data, experiment, models, train
from tests.tiny import load_config, tiny_config

ZOO = ["cgan", "acgan", "wgan_gp_acgan", "sngan", "sagan", "biggan"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_config_trains_two_steps_and_samples_one_row_per_class(tmp_path, name):
  # One critic update per step keeps compilation short here; the loop over n_critic critic
  # updates is the same code for every config and is covered by tests/test_steps.py.
  config = tiny_config(name, n_critic=1, num_train_steps=2, log_every_steps=1,
                       sample_every_steps=2, checkpoint_every_steps=2)
  workdir = str(tmp_path / name)
  state = train.train_and_evaluate(config, workdir)  # raises on a non-finite loss
  assert int(state.step) == 2
  assert config.conditional
  grid = np.asarray(Image.open(os.path.join(workdir, "samples", "step_2.png")))
  side = config.image_size
  assert grid.shape == (10 * (side + 2) + 2, 8 * (side + 2) + 2, 3)  # 10 classes x 8 samples
  if config.ema_decay:
    assert state.ema_params is not None


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# Parameter counts of the full-size CIFAR-10 networks (conditional, 10 classes): the same as
# PyTorch-StudioGAN's SNGAN / SAGAN / BigGAN-Mod CIFAR-10 models (models/resnet.py,
# models/big_resnet.py; see experiments/ZOO_NOTES.md).
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


def test_attention_resolution_must_exist():
  config = tiny_config("sagan", **{"discriminator.attention_resolution": 16})
  spec = experiment.DataSpec((16, 16, 3), tuple("abcdefghij"))
  gan = experiment.build_gan(config, spec)
  with pytest.raises(Exception, match="attention_resolution=16 is not the output side"):
    jax.eval_shape(gan.init, jax.random.PRNGKey(0))


def test_biggan_z_must_split_evenly():
  config = tiny_config("biggan", **{"generator.z_dim": 10})
  spec = experiment.DataSpec((16, 16, 3), tuple("abcdefghij"))
  gan = experiment.build_gan(config, spec)
  with pytest.raises(Exception, match="z_dim=10 is not divisible by 3"):
    jax.eval_shape(gan.init, jax.random.PRNGKey(0))


def test_unknown_condition_is_a_config_error():
  with pytest.raises(Exception, match="unknown discriminator condition 'proj'"):
    models.build_discriminator(dict(name="resnet", condition="proj"), image_size=32,
                               num_classes=10)(
        np.zeros((1, 32, 32, 3), np.float32), np.zeros((1,), np.int32))
