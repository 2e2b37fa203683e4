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
  for key, value in overrides.items():
    target = config
    *path, leaf = key.split(".")
    for part in path:
      target = target[part]
    target[leaf] = value
  return config


def tiny_flags(**overrides) -> list[str]:
  """The same shrinking as command-line overrides."""
  values = dict(TINY_OVERRIDES)
  values.update({"generator.width": 4, "generator.z_dim": 8, "discriminator.width": 4})
  values.update(overrides)
  return [f"--config.{k}={v}" for k, v in values.items()]
