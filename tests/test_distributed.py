"""Two processes (jax.distributed, gloo CPU collectives) train exactly like one with two devices,
stop together when one of them is signalled, and resume together."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ganjax import tasks
from ganjax.runtime import distributed
from ganjax.errors import ConfigError
from tests.conftest import REPO_ROOT, subprocess_env
from tests.tiny import random_inception_weights, tiny_config, tiny_flags


def test_initialize_kwargs_pass_only_given_values():
  config = tiny_config("dcgan")
  assert distributed.initialize_kwargs(config) is None
  config.distributed.enabled = True
  assert distributed.initialize_kwargs(config) == {}  # JAX's cluster detection fills them in
  config.distributed.update(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=1)
  assert distributed.initialize_kwargs(config) == {
      "coordinator_address": "127.0.0.1:1234", "num_processes": 2, "process_id": 1}
  config.distributed.process_id = 2
  with pytest.raises(ConfigError, match="process_id=2"):
    distributed.initialize_kwargs(config)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _cli(workdir: str, steps: int, *extra: str) -> list[str]:
  return [sys.executable, "-m", "ganjax.main", "--config=configs/dcgan.py",
          f"--workdir={workdir}",
          *tiny_flags(num_train_steps=steps, log_every_steps=5, sample_every_steps=5,
                      checkpoint_every_steps=5), *extra]


def _env(devices: int, **extra: str) -> dict[str, str]:
  return subprocess_env(JAX_PLATFORMS="cpu",
                        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **extra)


def _run_processes(commands: list[list[str]], env: dict[str, str], timeout: float = 300
                   ) -> list[str]:
  """Runs the commands at once; if one fails or time runs out, kills all and shows stderr.

  Returns each process's stderr (absl's log).
  """
  procs = [subprocess.Popen(c, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for c in commands]
  deadline = time.monotonic() + timeout
  try:
    while any(p.poll() is None for p in procs):
      failed = any(p.returncode not in (None, 0) for p in procs)
      if failed or time.monotonic() > deadline:
        break
      time.sleep(0.2)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
    outputs = [p.communicate() for p in procs]
  if any(p.returncode != 0 for p in procs):
    report = "\n".join(f"--- process {i} (exit {p.returncode}) stderr:\n{err[-3000:]}"
                       for i, (p, (_, err)) in enumerate(zip(procs, outputs)))
    pytest.fail(f"a process failed or timed out after {timeout} s:\n{report}")
  return [err for _, err in outputs]


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(
      (state.generator.params, state.discriminator.params, state.generator.collections,
       state.discriminator.collections, state.generator.opt_state,
       state.discriminator.opt_state))]


def _wait_for(path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
  """Waits until the file at `path` holds `text`; fails if `proc` exits first."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if os.path.exists(path) and text in open(path).read():
      return
    if proc.poll() is not None:
      pytest.fail(f"exited {proc.returncode} before {text!r}: {open(path).read()[-3000:]}")
    time.sleep(0.2)
  pytest.fail(f"no {text!r} in {timeout} s")


def _stopped_step(log: str) -> int:
  """The step of the last line, ``ganjax: stopped by signal S at step N: ... saved``."""
  last = log.strip().splitlines()[-1]
  assert last.startswith("ganjax: stopped by signal ") and "saved" in last, last
  return int(last.split("at step ")[1].split(":")[0])


@pytest.mark.slow
def test_two_processes_stop_together_resume_and_match_one_process_with_two_devices(tmp_path):
  """One process with two devices against two processes (gloo, one CPU device each).

  SIGTERM to process 1 once both train: both save the same step and exit with the preempted
  status; the restarted pair restores that step on both processes, finishes with IS and KID
  (each process computes its half of every batch, the features are gathered) and ends where
  the single process ends. Only the chief logs progress and writes events and sample grids.
  """
  from ganjax.runtime.signals import EXIT_PREEMPTED  # pylint: disable=g-import-not-at-top
  steps = 150  # the stop lands within a few steps of the signal (sent at step 3)
  single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
  # IS and KID at the last step (a small random-weight Inception at 75x75; KID, like FID, from
  # the gathered features, without FID's 2048x2048 matrix square root).
  fid_env = {"GANJAX_INCEPTION_WEIGHTS": random_inception_weights(str(tmp_path / "w.npz")),
             "GANJAX_FID_CACHE": str(tmp_path / "cache"),
             "GANJAX_INCEPTION_INPUT_SIZE_FOR_TESTS": "75"}
  flags = (f"--config.eval_every_steps={steps}", "--config.eval_metrics=is,kid",
           "--config.eval_best_metric=kid", "--config.eval_num_samples=16",
           "--config.eval_batch_size=8", "--config.sample_every_steps=50",
           "--config.checkpoint_every_steps=1000")
  _run_processes([_cli(single, steps, *flags)], _env(2, **fid_env))

  def pair(log_every: int) -> list[list[str]]:
    port = _free_port()
    return [_cli(multi, steps, *flags, "--config.distributed.enabled=True",
                 f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                 "--config.distributed.num_processes=2", f"--config.distributed.process_id={i}",
                 f"--config.log_every_steps={log_every}")
            for i in range(2)]

  logs = [tmp_path / f"log{i}" for i in range(2)]
  files = [open(l, "w") for l in logs]
  procs = [subprocess.Popen(c, cwd=REPO_ROOT, env=_env(1, **fid_env), stderr=f, text=True)
           for c, f in zip(pair(log_every=1), files)]
  try:
    _wait_for(logs[0], "step 3/", procs[0])
    procs[1].send_signal(signal.SIGTERM)
    started = time.monotonic()
    codes = [p.wait(timeout=60) for p in procs]
    assert time.monotonic() - started < 60
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
    for f in files:
      f.close()
  texts = [open(l).read() for l in logs]
  assert codes == [EXIT_PREEMPTED, EXIT_PREEMPTED], texts
  saved = [_stopped_step(t) for t in texts]
  assert saved[0] == saved[1] < steps, saved
  assert os.listdir(os.path.join(multi, "checkpoints")) == [str(saved[0])]

  logs = _run_processes(pair(log_every=steps), _env(1, **fid_env))
  assert f"step {steps}/{steps} |" in logs[0] and f"step {steps} | " in logs[0]
  assert " kid=" in logs[0]
  assert f"step {steps}/{steps} |" not in logs[1] and " kid=" not in logs[1]  # process 0's
  # Only the chief writes run info, events and sample grids; checkpoints are shared.
  assert sorted(os.listdir(os.path.join(multi, "checkpoints")), key=int) == [
      str(saved[0]), str(steps)]
  assert sorted(os.listdir(os.path.join(multi, "samples"))) == [
      "step_100.png", "step_150.png", "step_50.png"]
  events = [f for f in os.listdir(multi) if f.startswith("events.out.tfevents")]
  assert len(events) == 2  # one per run of the chief (stopped, then resumed)

  expected = tasks.load_run(single).state
  got = tasks.load_run(multi).state
  assert int(got.step) == int(expected.step) == steps
  diffs = [float(np.max(np.abs(a - b))) for a, b in zip(_leaves(expected), _leaves(got))]
  assert max(diffs) < 1e-5, max(diffs)

  with open(os.path.join(single, "best_kid.json")) as f:
    expected_eval = json.load(f)
  with open(os.path.join(multi, "best_kid.json")) as f:
    got_eval = json.load(f)
  assert got_eval["step"] == expected_eval["step"] == steps
  for key in ("kid", "inception_score"):
    assert got_eval[key] == pytest.approx(expected_eval[key], rel=1e-3), key
