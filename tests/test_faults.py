"""Nothing lost when machines are taken away: a signal, damaged checkpoints, a full disk, an
interrupted evaluation (a signal to one of two processes: tests/test_distributed.py)."""

import dataclasses
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ganjax import tasks
from ganjax.runtime.signals import EXIT_PREEMPTED
from tests.conftest import REPO_ROOT, subprocess_env
from tests.test_distributed import _leaves, _stopped_step, _wait_for
from tests.tiny import tiny_config, tiny_flags

pytestmark = pytest.mark.slow


def _train(workdir, steps, **overrides):
  config = tiny_config("dcgan", num_train_steps=steps, log_every_steps=1,
                       checkpoint_every_steps=2, sample_every_steps=100, **overrides)
  return tasks.train_and_evaluate(config, str(workdir))


def _cli_run(workdir, steps, *extra, preexec_fn=None, env=None):
  cmd = [sys.executable, "-m", "ganjax.main", "--config=dcgan", f"--workdir={workdir}",
         *tiny_flags(num_train_steps=steps, log_every_steps=1, checkpoint_every_steps=2,
                     sample_every_steps=100), *extra]
  return subprocess.run(cmd, cwd=REPO_ROOT, env=env or subprocess_env(), capture_output=True,
                        text=True, timeout=600, preexec_fn=preexec_fn)


def _one_line_error(result, *parts):
  assert result.returncode == 1, result.stderr[-3000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith("ganjax: error:")]
  assert len(errors) == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  for part in parts:
    assert part in errors[0], errors[0]
  return errors[0]


def _truncate_files(directory):
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _delete_data_file(directory):
  data = [os.path.join(root, n) for root, _, names in os.walk(directory) for n in names
          if os.sep + "d" + os.sep in os.path.join(root, n)]
  os.remove(sorted(data)[0])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """Six steps in one go, the reference of every resumed run here."""
  return _leaves(_train(tmp_path_factory.mktemp("whole"), 6))


@pytest.mark.parametrize("damage", [_truncate_files, _delete_data_file])
def test_damaged_latest_checkpoint_resumes_from_the_newest_intact_one(tmp_path, damage,
                                                                      uninterrupted, caplog):
  workdir = tmp_path / "run"
  _train(workdir, 4)  # checkpoints 2 and 4
  damage(workdir / "checkpoints" / "4" / "default")
  with caplog.at_level("WARNING"):
    resumed = _train(workdir, 6)
  warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
  assert len(warnings) == 1 and "checkpoints/4 cannot be read" in warnings[0], warnings
  assert "resuming from step 2" in warnings[0]
  assert (workdir / "damaged_checkpoints" / "4").is_dir()  # kept, never picked again
  assert sorted(os.listdir(workdir / "checkpoints"), key=int) == ["2", "4", "6"]
  diffs = [np.max(np.abs(a - b)) for a, b in zip(uninterrupted, _leaves(resumed))]
  assert max(diffs) == 0.0


def test_no_readable_checkpoint_is_a_one_line_error(tmp_path):
  workdir = tmp_path / "run"
  _train(workdir, 4)
  for step in ("2", "4"):
    _truncate_files(workdir / "checkpoints" / step / "default")
  result = _cli_run(workdir, 6)
  _one_line_error(result, "no readable checkpoint in", "step 4:", "step 2:")
  # The tools that read checkpoints say the same.
  gen = subprocess.run([sys.executable, "-m", "ganjax.generate", f"--workdir={workdir}",
                        "--num=2", f"--out={tmp_path / 'x.npz'}"], cwd=REPO_ROOT,
                       env=subprocess_env(), capture_output=True, text=True, timeout=600)
  _one_line_error(gen, "no readable checkpoint in")


def _file_size_limit(limit):
  def limit_files():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
  return limit_files


def test_saving_without_space_is_a_one_line_error_and_the_last_checkpoint_stays(tmp_path):
  """No file may grow past 20 kB (RLIMIT_FSIZE, no root needed): the checkpoint of step 6
  cannot be written; checkpoint 4 stays and the next start resumes from it."""
  workdir = tmp_path / "run"
  assert _cli_run(workdir, 4).returncode == 0
  env = subprocess_env(GANJAX_COMPILATION_CACHE="off")
  env.pop("JAX_COMPILATION_CACHE_DIR")  # its files are larger than the limit
  full = _cli_run(workdir, 8, preexec_fn=_file_size_limit(20_000), env=env)
  _one_line_error(full, f"cannot save checkpoint 6 in {workdir}/checkpoints",
                  "File too large", "checkpoint 4 is intact")
  assert sorted(n for n in os.listdir(workdir / "checkpoints") if n.isdigit()) == ["2", "4"]
  again = _cli_run(workdir, 8)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resuming from" in again.stderr and "checkpoints/4" in again.stderr


def test_sigterm_saves_the_step_and_exits_with_the_preempted_status(tmp_path, uninterrupted):
  workdir, log = tmp_path / "run", tmp_path / "log"
  cmd = [sys.executable, "-m", "ganjax.main", "--config=dcgan", f"--workdir={workdir}",
         *tiny_flags(num_train_steps=100_000, log_every_steps=1, checkpoint_every_steps=1000,
                     sample_every_steps=100_000)]
  with open(log, "w") as err:
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=subprocess_env(), stderr=err, text=True)
    _wait_for(log, "step 3/", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == EXIT_PREEMPTED
  text = open(log).read()
  step = _stopped_step(text)
  assert "ganjax: stopped by signal 15 at step " in text.strip().splitlines()[-1]
  assert os.listdir(workdir / "checkpoints") == [str(step)]


def test_an_interrupted_evaluation_is_run_again_by_the_resumed_run(tmp_path):
  """The stop signal interrupts an evaluation between batches: the step is saved, and the
  resumed run evaluates that step before training on."""
  from ganjax.runtime import loop  # pylint: disable=g-import-not-at-top
  from ganjax.runtime.run import Run  # pylint: disable=g-import-not-at-top
  from ganjax.runtime.signals import Interrupted  # pylint: disable=g-import-not-at-top
  from ganjax.errors import TrainingInterrupted  # pylint: disable=g-import-not-at-top
  config = tiny_config("dcgan", num_train_steps=4, checkpoint_every_steps=100,
                       sample_every_steps=100)
  evaluated = []

  def run_with(evaluate):
    run = Run(str(tmp_path), config.keep_checkpoints)
    try:
      task = tasks.KINDS["gan"].make_task(config, run)
      action = loop.Action("evaluate", 2, evaluate)
      return loop.train(dataclasses.replace(task, actions=task.actions + (action,)), run)
    finally:
      run.close()

  def interrupted(step, state):
    os.kill(os.getpid(), signal.SIGTERM)  # the signal arrives during the evaluation
    time.sleep(0.1)
    raise Interrupted

  with pytest.raises(TrainingInterrupted, match="at step 2"):
    run_with(interrupted)
  assert os.listdir(tmp_path / "checkpoints") == ["2"]
  state = run_with(lambda step, state: evaluated.append((step, int(jax.device_get(state.step)))))
  assert evaluated == [(2, 2), (4, 4)] and int(state.step) == 4
  assert not (tmp_path / "pending_actions.json").exists()
  shutil.rmtree(tmp_path / "checkpoints")


def test_orbax_tasks_abandoned_after_a_failed_write_log_nothing():
  """The saving test above sees these only when the garbage collector happens to run before
  exit: each abandoned orbax task's write error, logged by asyncio with its traceback."""
  import logging  # pylint: disable=g-import-not-at-top

  from ganjax import cli  # pylint: disable=g-import-not-at-top

  def record(future_repr):
    message = "\n".join(["Task exception was never retrieved", f"future: {future_repr}"])
    return logging.LogRecord("asyncio", logging.ERROR, "/usr/lib/asyncio/base_events.py", 1771,
                             message, None, (ValueError, ValueError("File too large"), None))

  quiet = cli._QuietLibraries()  # pylint: disable=protected-access
  orbax_task = ("<Task finished coro=<async_serialize_from_host() done, defined at "
                "/venv/site-packages/orbax/checkpoint/_src/serialization/serialization.py:126>>")
  assert not quiet.filter(record(orbax_task))
  own_task = "<Task finished coro=<main() done, defined at /home/me/train.py:3>>"
  assert quiet.filter(record(own_task))
