"""bfloat16 runs: activations in bfloat16, parameters, optimizer state, statistics and losses in
float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import data
from ganjax.gan import build as experiment
from tests.tiny import tiny_config

SPEC = experiment.DataSpec((8, 8, 3), tuple(f"class{i}" for i in range(10)))


def _dtypes(tree):
  return {str(x.dtype) for x in jax.tree.leaves(tree)}


@pytest.mark.parametrize("name", ["dcgan", "sngan", "wgan_gp_acgan"])
def test_models_compute_in_bfloat16_with_float32_params_and_outputs(name):
  gan = experiment.build_gan(tiny_config(name, dtype="bfloat16"), SPEC)
  state = gan.init(jax.random.PRNGKey(0))
  labels = jnp.arange(2, dtype=jnp.int32) if gan.generator.num_classes else None
  players = [(gan.generator, state.generator, (jnp.zeros((2, gan.generator.z_dim)), labels)),
             (gan.discriminator, state.discriminator, (jnp.zeros((2, 8, 8, 3)), labels))]
  for module, player, args in players:
    assert _dtypes(player.params) == {"float32"}
    assert _dtypes(player.collections) <= {"float32"}  # batch norm statistics, SN vectors
    out, captured = module.apply(player.variables, *args, train=True,
                                 capture_intermediates=True,
                                 mutable=["intermediates", *player.collections])
    assert _dtypes(out) == {"float32"}  # images and D's outputs, what the objectives see
    inner = {k: v for k, v in captured["intermediates"].items() if k != "__call__"}
    assert inner and _dtypes(inner) == {"bfloat16"}, (type(module).__name__, _dtypes(inner))
    assert _dtypes({k: v for k, v in captured.items() if k != "intermediates"}) <= {"float32"}


def test_bfloat16_step_keeps_float32_state_and_losses():
  dataset = data.load_dataset("synthetic:64", "train", 8)
  batch = data.training_batch(dataset, seed=0, step=0, batch_size=8)
  results = {}
  for dtype in ("float32", "bfloat16"):
    gan = experiment.build_gan(tiny_config("dcgan", dtype=dtype, ema_decay=0.9), SPEC)
    state = gan.init(jax.random.PRNGKey(0))
    state, metrics = jax.jit(gan.train_step())(state, batch)
    results[dtype] = metrics
  assert _dtypes(state) <= {"float32", "int32", "uint32"}
  assert _dtypes((state.generator.opt_state, state.discriminator.opt_state)) <= {
      "float32", "int32"}
  assert _dtypes(state.generator.collections) == {"float32"}
  assert _dtypes(results["bfloat16"]) == {"float32"}
  for k, v in results["bfloat16"].items():  # bfloat16 keeps ~3 significant digits
    np.testing.assert_allclose(float(v), float(results["float32"][k]), rtol=0.05, atol=0.02,
                               err_msg=k)
