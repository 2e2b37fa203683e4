"""The configs that ship with ganjax, one file per GAN of the CIFAR-10 literature.

Each module has ``get_config()`` (an `ml_collections.ConfigDict` starting from
`ganjax.configs.default`); its docstring names the paper and where each value comes from. A
command line takes a config by name (``--config=wgan_gp``) or by path
(``--config=configs/wgan_gp.py``, ``--config=/my/config.py``); `resolve` turns a name into the
path of the file shipped inside the package, so names work after ``pip install``.
"""

from __future__ import annotations

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))
NOT_CONFIGS = ("__init__", "default")


def names() -> list[str]:
  """The names of the shipped configs."""
  return sorted(f[:-3] for f in os.listdir(DIRECTORY)
                if f.endswith(".py") and f[:-3] not in NOT_CONFIGS)


def resolve(value: str) -> str:
  """The path a ``--config`` value means: a shipped config's file for a bare name (optionally
  with config_flags' ``:ARG`` suffix), the value itself otherwise."""
  name, sep, arg = value.partition(":")
  if name in names() and not os.path.exists(name):
    return os.path.join(DIRECTORY, name + ".py") + sep + arg
  return value
