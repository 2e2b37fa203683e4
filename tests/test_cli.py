"""End-to-end runs of `python -m ganjax.main` on tiny synthetic data, resume, and bad input."""

import glob
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ganjax import tasks
from ganjax.errors import NonFiniteLossError
from ganjax.runtime.run import Run
from tests.conftest import REPO_ROOT, subprocess_env
from tests.test_data import write_folder
from tests.tiny import tiny_config, tiny_flags

pytestmark = pytest.mark.slow


def run_cli(workdir, config="dcgan", *flags, env=None, timeout=900, by_name=False):
  """``python -m ganjax.main`` with the config given by its path (or by its name)."""
  config_arg = config if by_name else f"configs/{config}.py"
  cmd = [sys.executable, "-m", "ganjax.main", f"--config={config_arg}",
         f"--workdir={workdir}", *flags]
  return subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(**(env or {})),
                        capture_output=True, text=True, timeout=timeout)


def error_lines(result):
  return [l for l in result.stderr.splitlines() if l.startswith("ganjax: error:")]


def test_train_writes_outputs_and_resumes(tmp_path):
  workdir = str(tmp_path / "run")
  first = run_cli(workdir, "dcgan", *tiny_flags())
  assert first.returncode == 0, first.stderr[-3000:]
  assert "step 4/4 |" in first.stderr and "steps/s | ETA" in first.stderr
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  assert sorted(os.listdir(os.path.join(workdir, "samples"))) == ["step_2.png", "step_4.png"]
  assert glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
  assert os.path.exists(os.path.join(workdir, "run_info.json"))

  again = run_cli(workdir, "dcgan", *tiny_flags(num_train_steps=6))
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resuming from" in again.stderr and "checkpoints/4" in again.stderr
  assert "step 6/6 |" in again.stderr and "step 2/" not in again.stderr
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4", "6"]

  finished = run_cli(workdir, "dcgan", *tiny_flags(num_train_steps=6))
  assert finished.returncode == 0 and "nothing to do" in finished.stderr

  changed = run_cli(workdir, "dcgan", *tiny_flags(num_train_steps=8, **{"generator.width": 6}))
  assert changed.returncode == 1
  assert len(error_lines(changed)) == 1
  assert "does not match the state the config builds" in error_lines(changed)[0]


def _params(state):
  return [np.asarray(x) for x in jax.tree.leaves(
      (state.generator.params, state.discriminator.params, state.generator.collections,
       state.discriminator.collections, state.generator.opt_state,
       state.discriminator.opt_state))]


@pytest.mark.parametrize("name,total", [("dcgan", 40), ("wgan_gp", 6)])
def test_exact_resume(tmp_path, name, total):
  """N steps in one run == N/2 steps, then a second run to N (same seed)."""
  half = total // 2
  config = tiny_config(name, num_train_steps=total, checkpoint_every_steps=half,
                       log_every_steps=half, sample_every_steps=total)
  whole = tasks.train_and_evaluate(config, str(tmp_path / "whole"))
  config.num_train_steps = half
  tasks.train_and_evaluate(config, str(tmp_path / "split"))
  config.num_train_steps = total
  resumed = tasks.train_and_evaluate(config, str(tmp_path / "split"))
  assert int(resumed.step) == int(whole.step) == total
  diffs = [np.max(np.abs(a - b)) for a, b in zip(_params(whole), _params(resumed))]
  assert max(diffs) == 0.0


# -- bad input: one line naming the problem, a non-zero exit, no checkpoint ---------------------


def assert_one_line_error(result, *fragments):
  assert result.returncode != 0
  lines = error_lines(result)
  assert len(lines) == 1, result.stderr[-3000:]
  for fragment in fragments:
    assert fragment in lines[0], lines[0]
  assert "Traceback" not in result.stderr


def assert_no_checkpoint(workdir):
  assert not glob.glob(os.path.join(str(workdir), "checkpoints", "*"))


@pytest.mark.parametrize("override,fragments", [
    ("--config.learning_rate=1", ("unknown config key 'learning_rate' in --config.learning_rate;",
                                  "see ganjax/configs/default.py")),
    # A near miss: ml_collections' suggestion is passed on.
    ("--config.eval_every=0", ("unknown config key 'eval_every' in --config.eval_every; "
                               "did you mean 'eval_every_steps'?",)),
])
def test_unknown_config_key(tmp_path, override, fragments):
  result = run_cli(tmp_path / "run", "dcgan", override)
  assert_one_line_error(result, *fragments)
  assert not os.path.exists(tmp_path / "run")


def test_unknown_nested_option(tmp_path):
  result = run_cli(tmp_path / "run", "dcgan", "--config.generator.depth=3")
  assert_one_line_error(result, "unknown config key 'depth'")


def _broken_folder(tmp_path):
  root = write_folder(str(tmp_path / "imgs"), size=(8, 8), per_class=2)
  with open(os.path.join(root, "train", "cat", "bad.jpg"), "wb") as f:
    f.write(b"\x00garbage")
  return root


@pytest.mark.parametrize("make,message", [
    (lambda p: str(p / "missing"), "does not exist"),
    (lambda p: (os.makedirs(p / "empty" / "train" / "a"), str(p / "empty"))[1], "holds no images"),
    (_broken_folder, "unreadable image"),
])
def test_bad_folders(tmp_path, make, message):
  folder = make(tmp_path)
  result = run_cli(tmp_path / "run", "dcgan", *tiny_flags(dataset=f"folder:{folder}"))
  assert_one_line_error(result, message, folder)
  assert_no_checkpoint(tmp_path / "run")


def test_batch_size_not_divisible_by_devices(tmp_path):
  result = run_cli(tmp_path / "run", "dcgan", *tiny_flags(batch_size=3),
                   env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
  assert_one_line_error(result, "batch_size=3 is not divisible by the 2 devices")
  assert_no_checkpoint(tmp_path / "run")


def test_non_finite_loss_names_the_step_and_keeps_the_last_checkpoint(tmp_path):
  workdir = tmp_path / "run"
  ok = run_cli(workdir, "dcgan", *tiny_flags(num_train_steps=2))
  assert ok.returncode == 0, ok.stderr[-3000:]
  # The same run continued with a NaN penalty weight: the loss of step 3 is NaN.
  result = run_cli(workdir, "dcgan", *tiny_flags(num_train_steps=6, r1_penalty=float("nan"),
                                                 checkpoint_every_steps=1))
  assert_one_line_error(result, "non-finite d_loss", "at step 3;",
                        "the last checkpoint (step 2) is intact")
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2"]


def test_non_finite_parameters_are_never_saved(tmp_path):
  config = tiny_config("dcgan")
  run = Run(str(tmp_path / "run"), config.keep_checkpoints)
  try:
    task = tasks.KINDS["gan"].make_task(config, run)
    state = run.restore_or_init(task.init, task.rng)
    poisoned = state.replace(generator=state.generator.replace(
        params=jax.tree.map(lambda p: p * np.nan, state.generator.params)))
    with pytest.raises(NonFiniteLossError, match="non-finite by step 7.*no checkpoint"):
      run.save(7, poisoned)
    run.ckpt.wait_until_finished()
    assert_no_checkpoint(tmp_path / "run")
  finally:
    run.close()
