"""End to end: metrics during training, the best checkpoint, sample export, the metrics CLI.

A tiny DCGAN on 8x8 synthetic images evaluates every 2 steps with 16 samples through the FID
Inception network with random weights (tests/tiny.py `random_inception_weights`), against the
statistics of its 64 training images. To keep this cheap the network input is 75x75 instead of
299x299 (the private ``GANJAX_INCEPTION_INPUT_SIZE_FOR_TESTS`` hook; the same layers, ~16x
fewer FLOPs); tests/test_fid.py checks the 299x299 network against pytorch-fid. The compiled
Inception batch (16 images of 8x8) is shared by the processes through the test session's JAX
compilation cache.
"""

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, subprocess_env
from tests.tiny import random_inception_weights, tiny_flags

pytestmark = pytest.mark.slow


def run_module(module, *args, env):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT,
                        env=subprocess_env(**env), capture_output=True, text=True, timeout=900)


def test_in_training_fid_best_checkpoint_generate_and_fid_cli(tmp_path):
  weights = random_inception_weights(str(tmp_path / "inception.npz"))
  env = {"GANJAX_INCEPTION_WEIGHTS": weights, "GANJAX_FID_CACHE": str(tmp_path / "cache"),
         "GANJAX_INCEPTION_INPUT_SIZE_FOR_TESTS": "75"}
  workdir = str(tmp_path / "run")
  train = run_module("ganjax.main", "--config=configs/dcgan.py", f"--workdir={workdir}",
                     *tiny_flags(eval_every_steps=2, eval_num_samples=16, eval_batch_size=16,
                                 eval_metrics="fid,is,kid,pr,dc"),
                     env=env)
  assert train.returncode == 0, train.stderr[-3000:]
  logged = {int(m.group(1)): float(m.group(2))
            for m in re.finditer(r"step (\d+) \| fid=(\S+) inception_score=", train.stderr)}
  assert sorted(logged) == [2, 4] and all(np.isfinite(v) and v > 0 for v in logged.values())
  assert "Inception v3 of pytorch-fid" in train.stderr and "resized to 75x75" in train.stderr
  assert re.search(r"step 4 \| fid=\S+ inception_score=\S+ \(\+- \S+\) kid=\S+ \(\+- \S+\) "
                   r"precision=\S+ recall=\S+ density=\S+ coverage=\S+ \| 16 samples",
                   train.stderr), train.stderr[-3000:]
  assert "evaluation samples: 16/16 images (100.0%)" in train.stderr
  # statistics and features, computed once
  assert len(glob.glob(os.path.join(str(tmp_path / "cache"), "*.npz"))) == 2

  with open(os.path.join(workdir, "best_fid.json")) as f:
    best = json.load(f)
  best_step = min(logged, key=logged.get)
  assert best["step"] == best_step
  assert best["fid"] == pytest.approx(logged[best_step], rel=1e-3)
  assert best["reference"].startswith("synthetic:64:train|n=all|size=8|inception=")
  assert best["inception_score"] >= 1.0 and best["num_samples"] == 16
  assert os.listdir(os.path.join(workdir, "best_fid")) == [str(best_step)]
  events = open(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))[0], "rb").read()
  assert all(name in events for name in (b"fid", b"inception_score", b"kid", b"coverage"))

  samples = str(tmp_path / "samples.npz")
  gen = run_module("ganjax.generate", f"--workdir={workdir}", "--num=16", f"--out={samples}",
                   "--batch_size=16", env=env)
  assert gen.returncode == 0, gen.stderr[-3000:]
  with np.load(samples) as f:
    assert f["images"].shape == (16, 8, 8, 3) and f["images"].dtype == np.uint8

  out_json = str(tmp_path / "metrics.json")
  from_file = run_module("ganjax.eval.metrics", f"--samples={samples}",
                         "--ref=synthetic:64:train", "--batch_size=16", f"--json={out_json}",
                         env=env)
  assert from_file.returncode == 0, from_file.stderr[-3000:]
  for name in ("fid", "inception_score", "kid", "precision", "recall", "density", "coverage"):
    assert re.search(rf"^{name} +\S+", from_file.stdout, re.M), from_file.stdout
  assert re.search(r"^samples 16  reference synthetic:64:train\|n=all", from_file.stdout, re.M)
  assert "computing reference" not in from_file.stderr  # the training run's cache
  assert "Inception features: 16/16 images (100.0%)" in from_file.stderr
  with open(out_json) as f:
    record = json.load(f)
  assert record["num_samples"] == 16 and record["samples"] == samples
  assert set(record["metrics"]) == {"fid", "inception_score", "inception_score_std", "kid",
                                    "kid_std", "precision", "recall", "density", "coverage"}
  assert record["protocol"][1].startswith("FID: pytorch-fid")

  # Sampling the best step's checkpoint with the training evaluation's seed gives the same
  # images, hence the logged numbers (tests/test_sampling.py: the same bytes for any batch
  # size and on 1, 2 and 4 devices and processes).
  from_run = run_module("ganjax.eval.fid", f"--workdir={workdir}", f"--step={best_step}",
                        "--num=16", "--batch_size=16", "--seed=0", env=env)
  assert from_run.returncode == 0, from_run.stderr[-3000:]
  for name in ("fid", "kid", "precision", "coverage"):
    value = float(re.search(rf"^{name} +(\S+)", from_run.stdout, re.M).group(1))
    assert value == pytest.approx(best[name], rel=1e-4, abs=1e-4), name
  assert "sampling and Inception features: 16/16 images" in from_run.stderr
  # (A statistics .npz as --ref: tests/test_metrics_registry.py.)

