"""Tiny versions of the configs, for tests: 8x8 synthetic images, widths of a few channels."""

import os

from ml_collections import config_flags  # noqa: F401  (keeps absl flags importable)
import importlib.util

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
  """configs/<name>.py's get_config()."""
  path = os.path.join(REPO_ROOT, "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"configs_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


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
