"""Population training: member i of a vmapped population == the single run of its config.

The equivalence test trains with SGD: Adam turns the rounding noise of gradients that are zero
in exact arithmetic (the biases in front of batch norm) into steps of size lr, so two
differently compiled programs (vmapped or not) of an Adam run differ by ~lr in those leaves.
The swept gradient-penalty weight is small (0.1) for a similar reason: with weight 1 these tiny
batch-norm networks amplify the float32 rounding differences of the two programs about tenfold
per step (6e-7 after one step, 5e-6 after two, 5e-5 after three).
"""

import glob
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ganjax import data, tasks
from ganjax.eval import sampling
from ganjax.gan import build as experiment
from ganjax.population import build as population
from ganjax.errors import ConfigError
from tests.conftest import REPO_ROOT, subprocess_env
from tests.tiny import random_inception_weights, tiny_config, tiny_flags

SWEEP = ("d_optimizer.learning_rate=0.02,0.05;g_optimizer.learning_rate=0.01,0.03;"
         "gradient_penalty=0,0.1;ema_decay=0.9,0.5")


def _population_config(**overrides):
  config = tiny_config("dcgan", ema_decay=0.9, **overrides)
  config.g_optimizer = ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=0.01, momentum=0.5, schedule="linear", decay_start=0.0))
  config.d_optimizer = ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=0.02, momentum=0.5, schedule="constant"))
  config.population.update(size=2, sweep=SWEEP)
  return config


@pytest.mark.parametrize("sweep,message", [
    ("gradient_penalty=1,2,3", "has 3 values for population.size=2"),
    ("generator.widht=4,8", "unknown config key 'generator.widht'"),
    ("generator.width=4,8", "'generator.width' cannot differ between the members"),
    ("n_critic=1,2", "'n_critic' cannot differ"),
    ("batch_size=8,16", "'batch_size' cannot differ"),
    ("ema_start_step=0,5", "'ema_start_step' cannot differ"),
    ("gradient_penalty 1,2", "is not KEY=V0,V1"),
    ("gradient_penalty=1,x", "needs numbers"),
])
def test_bad_sweeps_are_one_line_config_errors(sweep, message):
  config = tiny_config("dcgan")
  config.population.update(size=2, sweep=sweep)
  with pytest.raises(ConfigError, match=message):
    population.population_of(config)


def test_member_config_takes_seed_and_swept_values():
  config = _population_config(seed=7)
  member = population.member_config(config, 1)
  assert member.seed == 8 and member.d_optimizer.learning_rate == 0.05
  assert member.g_optimizer.learning_rate == 0.03 and member.gradient_penalty == 0.1
  assert member.ema_decay == 0.5
  assert population.population_of(member) is None
  with pytest.raises(ConfigError, match="member 2 does not exist"):
    population.member_config(config, 2)


def _leaves(state):
  return jax.tree.leaves((state.generator.params, state.discriminator.params,
                          state.generator.collections, state.discriminator.collections,
                          state.ema_params))


def test_member_equals_single_run_of_its_config():
  same_batches = False  # (the end-to-end run below uses shared batches)
  config = _population_config()
  dataset = data.load_dataset(config.dataset, "train", config.image_size)
  spec = experiment.DataSpec(dataset.image_shape, dataset.class_names)
  pop = population.build_population(config, spec)
  states = jax.jit(pop.init)(pop.rngs())
  step = jax.jit(pop.train_step())
  hyper = {k: jnp.asarray(v) for k, v in pop.hyper.items()}
  steps = 3

  def batch(seed, t):
    return data.training_batch(dataset, seed=seed, step=t, batch_size=config.batch_size)

  for t in range(steps):
    batches = [batch(config.seed if same_batches else s, t) for s in pop.seeds]
    stacked = batches[0] if same_batches else jax.tree.map(lambda *x: np.stack(x), *batches)
    states, pop_metrics = step(states, stacked, hyper)

  for i in range(pop.size):
    member = population.member_config(config, i)
    gan = experiment.build_gan(member, spec)
    single = jax.jit(gan.init)(jax.random.PRNGKey(member.seed))
    single_step = jax.jit(gan.train_step())
    for t in range(steps):
      single, metrics = single_step(single, batch(config.seed if same_batches else member.seed,
                                                  t))
    got = population.member_state(states, i)
    assert int(got.step) == steps
    diffs = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(_leaves(single), _leaves(got))]
    assert max(diffs) < 1e-5, (i, max(diffs))
    np.testing.assert_allclose(float(pop_metrics["g_loss"][i]), float(metrics["g_loss"]),
                               rtol=1e-5, atol=1e-6)
  # The swept learning rate lives in each member's optimizer state.
  lrs = optax.tree_utils.tree_get(states.discriminator.opt_state, "learning_rate")
  np.testing.assert_allclose(np.asarray(lrs), [0.02, 0.05], rtol=1e-6)


@pytest.mark.slow
def test_population_cli_writes_member_outputs_and_resumes(tmp_path):
  from tests.test_cli import run_cli  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / "pop")
  # Every member's IS and KID at step 4 (a small random-weight Inception at 75x75; FID's
  # 2048x2048 matrix square root costs seconds per member, and tests/test_fid_cli.py has it).
  env = {"GANJAX_INCEPTION_WEIGHTS": random_inception_weights(str(tmp_path / "w.npz")),
         "GANJAX_FID_CACHE": str(tmp_path / "cache"),
         "GANJAX_INCEPTION_INPUT_SIZE_FOR_TESTS": "75"}
  flags = tiny_flags(**{"population.size": 2, "population.same_batches": True,
                        "population.sweep": "d_optimizer.learning_rate=1e-4,4e-4",
                        "eval_every_steps": 4, "eval_metrics": "is,kid",
                        "eval_best_metric": "kid", "eval_num_samples": 16,
                        "eval_batch_size": 16})
  first = run_cli(workdir, "dcgan", *flags, env=env)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "step 4/4 | mean of 2 members:" in first.stderr
  assert "member 1 (seed 1 d_optimizer.learning_rate=0.0004) at step 4 |" in first.stderr
  for i in range(2):
    assert sorted(os.listdir(os.path.join(workdir, "samples", f"member_{i}"))) == [
        "step_2.png", "step_4.png"]
    assert glob.glob(os.path.join(workdir, f"member_{i}", "events.out.tfevents.*"))
    assert f"step 4 | member {i} | inception_score=" in first.stderr
    with open(os.path.join(workdir, f"member_{i}", "best_kid.json")) as f:
      assert json.load(f)["step"] == 4
    assert os.listdir(os.path.join(workdir, f"member_{i}", "best_kid")) == ["4"]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  with open(os.path.join(workdir, "population_summary.json")) as f:
    summary = json.load(f)
  assert summary["step"] == 4 and [m["seed"] for m in summary["members"]] == [0, 1]
  for key in ("d_loss", "kid", "inception_score"):
    values = [m["metrics"][key] for m in summary["members"]]
    assert all(np.isfinite(values)), (key, values)
    assert summary["mean"][key] == pytest.approx(np.mean(values))
    assert summary["std"][key] == pytest.approx(np.std(values))
  assert summary["members"][0]["metrics"]["kid"] != summary["members"][1]["metrics"]["kid"]

  again = run_cli(workdir, "dcgan", *tiny_flags(**{
      "population.size": 2, "population.same_batches": True, "num_train_steps": 6,
      "population.sweep": "d_optimizer.learning_rate=1e-4,4e-4"}))
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resuming from" in again.stderr and "step 6/6 |" in again.stderr

  loaded = tasks.load_run(workdir, member=1)
  config, state = loaded.config, loaded.state
  assert int(state.step) == 6 and config.seed == 1
  assert config.d_optimizer.learning_rate == 4e-4
  with pytest.raises(ConfigError, match="choose one with --member"):
    tasks.load_run(workdir)
  out = str(tmp_path / "member1.npz")
  gen = subprocess.run([sys.executable, "-m", "ganjax.generate", f"--workdir={workdir}",
                        "--num=5", f"--out={out}", "--member=1"], cwd=REPO_ROOT,
                       env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert gen.returncode == 0, gen.stderr[-3000:]
  assert np.load(out)["images"].shape == (5, 8, 8, 3)

  # A bad sweep is refused before anything is written (the command line prints ConfigErrors
  # as one line: tests/test_cli.py).
  bad = tiny_config("dcgan")
  bad.population.update(size=2, sweep="generator.width=4,8")
  with pytest.raises(ConfigError, match="population.sweep: 'generator.width' cannot differ"):
    tasks.train_and_evaluate(bad, str(tmp_path / "bad"))
  assert not os.path.exists(str(tmp_path / "bad"))
