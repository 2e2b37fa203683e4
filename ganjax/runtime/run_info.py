"""``WORKDIR/run_info.json``: the config and the data spec a run was trained with.

The tools that read a run later (sampling, FID, analysis, reports) need neither the config file
nor the data. `read_run_info` fills keys a run recorded before they existed with today's
defaults. This module imports neither JAX nor TensorFlow, so reading a run stays quick.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections

from ganjax.configs import default
from ganjax.data.spec import DataSpec
from ganjax.errors import ConfigError
from ganjax.runtime import files

RUN_INFO_FILE = "run_info.json"


def write_run_info(workdir: str, config: ml_collections.ConfigDict, spec: DataSpec,
                   source: str) -> None:
  """Records the config and the data spec a run was trained with."""
  files.write_json(os.path.join(workdir, RUN_INFO_FILE), {
      "config": config.to_dict(), "image_shape": list(spec.image_shape),
      "class_names": list(spec.class_names), "data_source": source})


def _merge(base: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
  out = dict(base)
  for key, value in stored.items():
    out[key] = (_merge(base[key], value) if isinstance(value, dict) and
                isinstance(base.get(key), dict) else value)
  return out


def read_record(workdir: str) -> dict[str, Any]:
  """The run's ``run_info.json`` as written; a `ConfigError` when `workdir` has none."""
  path = os.path.join(workdir, RUN_INFO_FILE)
  if not os.path.isfile(path):
    raise ConfigError(f"{workdir!r} is not a ganjax run directory (no {RUN_INFO_FILE})")
  return files.read_json(path)


def config_of(record: dict[str, Any]) -> ml_collections.ConfigDict:
  """A record's config in effect: its values over today's defaults."""
  return ml_collections.ConfigDict(_merge(default.get_config().to_dict(), record["config"]))


def read_run_info(workdir: str) -> tuple[ml_collections.ConfigDict, DataSpec]:
  """The config (over today's defaults) and the data spec of the run in `workdir`."""
  record = read_record(workdir)
  return config_of(record), DataSpec(tuple(record["image_shape"]), tuple(record["class_names"]))
