"""End-to-end: the classifier task and the visualize command line on tiny synthetic runs, and
the discriminator's test accuracy during an auxiliary-classifier GAN run."""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from ganjax import data
from ganjax.classifier.step import make_logits_fn
from ganjax.tasks import load_run
from tests.conftest import REPO_ROOT, subprocess_env
from tests.tiny import tiny_flags

pytestmark = pytest.mark.slow

# 64 training images in batches of 16: 4 steps per epoch. Test batches of 24 leave a padded
# last batch (64 = 24 + 24 + 16).
CLASSIFIER_FLAGS = ["--config.dataset=synthetic:64", "--config.image_size=8",
                    "--config.batch_size=16", "--config.discriminator.width=4",
                    "--config.log_every_steps=2", "--config.eval_batch_size=24",
                    "--config.optimizer.learning_rate=3e-3"]


def run_module(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT,
                        env=subprocess_env(), capture_output=True, text=True, timeout=900)


def train_classifier(workdir, epochs):
  return run_module("ganjax.main", "--config=configs/classifier.py", f"--workdir={workdir}",
                    *CLASSIFIER_FLAGS, f"--config.num_epochs={epochs}")


def visualize(workdir, out, *args):
  return run_module("ganjax.analysis.visualize", f"--workdir={workdir}", f"--out={out}", *args)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
  """A classifier trained 2 epochs, then resumed to 3: (workdir, first output, resumed one)."""
  workdir = str(tmp_path_factory.mktemp("classifier") / "run")
  first = train_classifier(workdir, 2)
  assert first.returncode == 0, first.stderr[-3000:]
  again = train_classifier(workdir, 3)
  assert again.returncode == 0, again.stderr[-3000:]
  return workdir, first.stderr, again.stderr


def test_classifier_non_finite_loss_names_the_step_and_keeps_the_last_checkpoint(
    classifier_run, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / "run")
  shutil.copytree(classifier_run[0], workdir)
  out = run_module("ganjax.main", "--config=configs/classifier.py", f"--workdir={workdir}",
                   *CLASSIFIER_FLAGS, "--config.num_epochs=4",
                   "--config.optimizer.learning_rate=1e30")
  assert out.returncode == 1
  errors = [l for l in out.stderr.splitlines() if l.startswith("ganjax: error:")]
  assert len(errors) == 1 and re.fullmatch(
      r"ganjax: error: non-finite [a-z_, ]+ at step 1[3-6]; the last checkpoint \(step 12\) "
      r"is intact", errors[0]), errors
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints")), key=int) == ["4", "8", "12"]


def test_classifier_trains_per_epoch_logs_and_resumes(classifier_run):
  workdir, first, again = classifier_run
  assert "epoch 1/2 | train_accuracy=" in first and "epoch 2/2 |" in first
  assert "resuming from" in again and "checkpoints/8" in again
  assert "epoch 3/3 |" in again and "epoch 1/" not in again and "epoch 2/" not in again
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints")), key=int) == ["4", "8", "12"]
  with open(os.path.join(workdir, "run_info.json")) as f:
    assert json.load(f)["config"]["task"] == "classifier"
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir))
  # The logged test accuracy is the restored network's accuracy on all 64 test images.
  logged = float(re.search(r"epoch 3/3 .* test_accuracy=([0-9.]+)", again).group(1))
  loaded = load_run(workdir)
  assert loaded.kind == "classifier"
  network, state = loaded.discriminator, loaded.state
  test = data.load_dataset("synthetic:64", "test", image_size=8)
  logits = make_logits_fn(network)(state.model.variables, data.to_float(test.images))
  expected = np.mean(np.argmax(np.asarray(jax.device_get(logits)), -1) == test.labels)
  assert abs(logged - expected) < 1e-4, (logged, expected)


def test_visualize_all_kinds_on_a_classifier_run(classifier_run, tmp_path):
  workdir, _, _ = classifier_run
  out = str(tmp_path / "vis")
  result = visualize(workdir, out, "--kind=perturb", "--kind=max_class", "--kind=max_features",
                     "--layer=1,8", "--num_steps=10", "--num_images=16", "--num_channels=4")
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.listdir(out)) == sorted([
      "perturb_images.png", "perturb_gradients.png", "perturb_perturbed.png", "perturb.json",
      "max_class.png", "max_class.json", "max_features_layer1.png", "max_features_layer8.png",
      "max_features.json"])
  with open(os.path.join(out, "perturb.json")) as f:
    perturb = json.load(f)
  real = perturb["real"]
  assert real["num_images"] == 16 and "generated" not in perturb
  assert real["mean_true_logit_after"] < real["mean_true_logit_before"]
  assert f"accuracy {real['accuracy_before']:.4f} -> {real['accuracy_after']:.4f}" in \
      result.stdout
  with open(os.path.join(out, "max_class.json")) as f:
    per_class = json.load(f)["per_class"]
  assert len(per_class) == 10
  assert all(v["logit_after"] > v["logit_before"] for v in per_class.values())
  with open(os.path.join(out, "max_features.json")) as f:
    layers = json.load(f)["layers"]
  assert [layers[k]["module"] for k in ("1", "8")] == ["conv1", "conv8"]
  assert layers["8"]["channels"] == [0, 1, 2, 3]
  assert np.mean(layers["8"]["activation_after"]) > np.mean(layers["8"]["activation_before"])

  bad = visualize(workdir, out, "--kind=max_features", "--layer=9")
  assert bad.returncode == 1
  assert "ganjax: error: layer 9 does not exist: the network has 8 convolutions" in bad.stderr


def test_acgan_run_logs_test_class_accuracy_and_visualizes(tmp_path):
  workdir, out = str(tmp_path / "acgan"), str(tmp_path / "vis")
  result = run_module("ganjax.main", "--config=configs/acgan.py", f"--workdir={workdir}",
                      *tiny_flags("acgan", eval_every_steps=2, eval_fid=False))
  assert result.returncode == 0, result.stderr[-3000:]
  assert len(re.findall(r"step [24] \| d_test_class_acc=[0-9.]+ ", result.stderr)) == 2
  shown = visualize(workdir, out, "--kind=perturb", "--kind=max_features", "--layer=3",
                    "--num_steps=5", "--num_images=8", "--num_channels=2")
  assert shown.returncode == 0, shown.stderr[-3000:]
  assert "generated accuracy" in shown.stdout
  for name in ("perturb_generated.png", "perturb_generated_perturbed.png",
               "max_features_layer3.png"):
    assert os.path.exists(os.path.join(out, name))
  with open(os.path.join(out, "max_features.json")) as f:
    assert json.load(f)["layers"]["3"]["module"] == "conv_out"
