"""Tiny versions of the configs, for tests: 8x8 synthetic images, widths of a few channels."""

import os

from ml_collections import config_flags  # noqa: F401  (keeps absl flags importable)
import importlib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_OVERRIDES = {
    "dataset": "synthetic:64",
    "image_size": 8,
    "batch_size": 8,
    "num_train_steps": 4,
    "log_every_steps": 2,
    "sample_every_steps": 2,
    "checkpoint_every_steps": 2,
}


# Configs whose architecture needs more than the common shrinking: self-attention needs 8
# channels and a block output at its resolution (8x8 images: the generator's block outputs 8x8,
# the discriminator's blocks 4x4).
CONFIG_OVERRIDES = {
    "sagan": {"generator.width": 8, "discriminator.width": 8,
              "generator.attention_resolution": 8, "discriminator.attention_resolution": 4},
    "biggan": {"generator.width": 8, "discriminator.width": 8, "generator.shared_dim": 4,
               "generator.attention_resolution": 8, "discriminator.attention_resolution": 4},
}


def load_config(name: str):
  """The shipped config `name`'s get_config() (``ganjax/configs/<name>.py``)."""
  return importlib.import_module(f"ganjax.configs.{name}").get_config()


def tiny_config(name: str, **overrides):
  """configs/<name>.py shrunk to seconds: tiny widths and images, synthetic data."""
  config = load_config(name)
  config.update(TINY_OVERRIDES)
  config.generator.update(width=4, z_dim=8)
  config.discriminator.update(width=4)
  for key, value in {**CONFIG_OVERRIDES.get(name, {}), **overrides}.items():
    target = config
    *path, leaf = key.split(".")
    for part in path:
      target = target[part]
    target[leaf] = value
  return config


def tiny_flags(config: str | None = None, **overrides) -> list[str]:
  """The same shrinking as command-line overrides (with `config`'s extra shrinking)."""
  values = dict(TINY_OVERRIDES)
  values.update({"generator.width": 4, "generator.z_dim": 8, "discriminator.width": 4})
  values.update(CONFIG_OVERRIDES.get(config, {}))
  values.update(overrides)
  return [f"--config.{k}={v}" for k, v in values.items()]


def random_inception_weights(path: str, seed: int = 0) -> str:
  """A FID Inception weights file with random weights that keep activations O(1).

  Conv kernels ~ N(0, 2 / fan_in) (He et al. 2015), identity batch norm, fc ~ N(0, 1 / 2048);
  drawn in numpy from the architecture's shapes (no torch, no forward pass).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from ganjax.eval import inception  # pylint: disable=g-import-not-at-top

  shapes = traverse_util.flatten_dict(
      jax.eval_shape(inception.init_variables, jax.random.PRNGKey(0)), sep="/")
  rng = np.random.default_rng(seed)
  flat = {}
  for key, leaf in shapes.items():
    shape, name = leaf.shape, key.rsplit("/", 1)[1]
    if name in ("kernel", "fc_kernel"):
      fan_in = int(np.prod(shape[:-1]))
      gain = 2.0 if name == "kernel" else 1.0
      flat[key] = rng.normal(0.0, np.sqrt(gain / fan_in), shape)
    else:
      flat[key] = np.ones(shape) if name in ("scale", "var") else np.zeros(shape)
  inception.save_variables(traverse_util.unflatten_dict(flat, sep="/"), path)
  return path


def assert_dcgan_generator_moved(before, after) -> None:
  """Every parameter of a DCGAN generator moved but the biases of its transposed convolutions,
  which batch norm takes as its shift (`ganjax.models.layers.BatchNorm`): those stay exactly."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  moved = {jax.tree_util.keystr(path): not np.array_equal(np.asarray(a), np.asarray(b))
           for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(before)[0],
                                   jax.tree.leaves(after))}
  shifts = {k for k in moved if k.startswith("['up") and k.endswith("['bias']")}
  assert shifts and not any(moved[k] for k in shifts), moved
  assert all(v for k, v in moved.items() if k not in shifts), moved
