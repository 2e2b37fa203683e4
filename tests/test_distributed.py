"""Two processes (jax.distributed, gloo CPU collectives) train exactly like one with two devices."""

import json
import os
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


@pytest.mark.slow
def test_two_processes_match_one_process_with_two_devices(tmp_path):
  single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
  # FID / IS at step 10 (a small random-weight Inception at 75x75): on two processes each
  # computes its half of every batch and the features are gathered.
  fid_env = {"GANJAX_INCEPTION_WEIGHTS": random_inception_weights(str(tmp_path / "w.npz")),
             "GANJAX_FID_CACHE": str(tmp_path / "cache"),
             "GANJAX_INCEPTION_INPUT_SIZE_FOR_TESTS": "75"}
  evaluate = ("--config.eval_every_steps=10", "--config.eval_num_samples=16",
              "--config.eval_batch_size=8")
  _run_processes([_cli(single, 10, *evaluate)], _env(2, **fid_env))

  def both(steps, *extra):
    port = _free_port()
    return [_cli(multi, steps, "--config.distributed.enabled=True",
                 f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                 "--config.distributed.num_processes=2", f"--config.distributed.process_id={i}",
                 *extra)
            for i in range(2)]

  _run_processes(both(5), _env(1))
  # Resumes from step 5: restore from both processes.
  logs = _run_processes(both(10, *evaluate), _env(1, **fid_env))
  assert "step 10/10 |" in logs[0] and "step 10 | fid=" in logs[0]
  assert "step 10/10 |" not in logs[1] and "fid=" not in logs[1]  # progress from process 0

  # Only the chief writes run info, events and sample grids; checkpoints are shared.
  assert sorted(os.listdir(os.path.join(multi, "checkpoints"))) == ["10", "5"]
  assert sorted(os.listdir(os.path.join(multi, "samples"))) == ["step_10.png", "step_5.png"]
  events = [f for f in os.listdir(multi) if f.startswith("events.out.tfevents")]
  assert len(events) == 2  # one per run of the chief (first 5 steps, then the resumed 5)

  expected = tasks.load_run(single).state
  got = tasks.load_run(multi).state
  assert int(got.step) == int(expected.step) == 10
  diffs = [float(np.max(np.abs(a - b))) for a, b in zip(_leaves(expected), _leaves(got))]
  assert max(diffs) < 1e-5, max(diffs)

  with open(os.path.join(single, "best_fid.json")) as f:
    expected_eval = json.load(f)
  with open(os.path.join(multi, "best_fid.json")) as f:
    got_eval = json.load(f)
  assert got_eval["step"] == expected_eval["step"] == 10
  for key in ("fid", "inception_score"):
    assert got_eval[key] == pytest.approx(expected_eval[key], rel=1e-3), key
