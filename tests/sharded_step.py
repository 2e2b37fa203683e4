"""Runs two training steps of tiny configs on every local device; prints metrics as JSON.

Used by test_steps.py in a subprocess, with XLA_FLAGS forcing N host devices.
"""

import json
import sys

import jax
import numpy as np

from ganjax import data, experiment, train
from tests.tiny import tiny_config


def run(config_name: str) -> dict[str, list[float]]:
  config = tiny_config(config_name)
  mesh = train.make_mesh()
  dataset = data.load_dataset(config.dataset, "train", config.image_size)
  spec = experiment.DataSpec(dataset.image_shape, dataset.class_names)
  gan = experiment.build_gan(config, spec, jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("data")))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.jit(gan.init, out_shardings=replicated)(jax.random.PRNGKey(config.seed))
  step = jax.jit(gan.train_step(), in_shardings=(replicated, train.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)
  history: dict[str, list[float]] = {}
  for t in range(2):
    local = data.training_batch(dataset, seed=config.seed, step=t,
                                batch_size=config.batch_size, n_critic=config.n_critic)
    batch = train.to_global_batch(local, train.batch_sharding(mesh), config.batch_size)
    state, metrics = step(state, batch)
    for k, v in jax.device_get(metrics).items():
      history.setdefault(k, []).append(float(v))
  history["param_checksum"] = [float(sum(np.abs(np.asarray(x, np.float64)).sum()
                                         for x in jax.tree.leaves(state.generator.params)))]
  return history


if __name__ == "__main__":
  out = {"devices": jax.device_count()}
  out.update({name: run(name) for name in sys.argv[1:]})
  print("RESULT " + json.dumps(out))
