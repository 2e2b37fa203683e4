"""Runs two training steps of tiny configs on every local device; prints metrics as JSON.

Used by test_steps.py in a subprocess, with XLA_FLAGS forcing N host devices. The models are
built as the trainer builds them, with the convolution backend of the mesh; the output says
which it is and whether the compiled step calls the oneDNN extension.
"""

import json
import sys

import jax
import numpy as np

from ganjax import data
from ganjax.gan import build as experiment
from ganjax.ops import conv
from ganjax.runtime import mesh as mesh_lib
from tests.tiny import tiny_config


def run(config_name: str) -> dict[str, list]:
  config = tiny_config(config_name)
  mesh = mesh_lib.make_mesh()
  backend = conv.backend_for(mesh)
  dataset = data.load_dataset(config.dataset, "train", config.image_size)
  spec = experiment.DataSpec(dataset.image_shape, dataset.class_names)
  gan = experiment.build_gan(config, spec, mesh_lib.data_sharding(mesh), backend)
  replicated = mesh_lib.replicated(mesh)
  state = jax.jit(gan.init, out_shardings=replicated)(jax.random.PRNGKey(config.seed))
  step = jax.jit(gan.train_step(), in_shardings=(replicated, mesh_lib.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)
  history: dict[str, list] = {"conv_backend": [backend]}
  for t in range(2):
    local = data.training_batch(dataset, seed=config.seed, step=t,
                                batch_size=config.batch_size, n_critic=config.n_critic)
    batch = mesh_lib.to_global_batch(local, mesh_lib.batch_sharding(mesh), config.batch_size)
    if t == 0:
      hlo = step.lower(state, batch).as_text()
      history["calls_onednn"] = [conv.onednn.available() and "ganjax_onednn_conv" in hlo]
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
