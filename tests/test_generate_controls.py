"""`python -m ganjax.generate`'s sampling controls: --seeds, --class, --per_class,
--truncation, --interpolate, and their one-line errors.

The run directories are written in-process (run_info.json and a checkpoint of an initial state
with its generator's kernels scaled up for varied images): no training step to compile."""

import os
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pytest

from ganjax.cli import generate
from ganjax.data.spec import DataSpec
from ganjax.errors import ConfigError
from ganjax.gan import build as experiment
from ganjax.runtime import checkpoints
from ganjax.runtime import run_info
from tests.conftest import REPO_ROOT, subprocess_env
from tests.tiny import tiny_config

SPEC = DataSpec((8, 8, 3), tuple(f"class{k}" for k in range(10)))


def write_run(workdir: str, name: str) -> str:
  """A run directory of config `name` (tiny) with one checkpoint, at step 0."""
  config = tiny_config(name)
  gan = experiment.build_gan(config, SPEC)
  state = jax.jit(gan.init)(jax.random.PRNGKey(config.seed))
  params = jax.tree.map(lambda x: x * 3.0 if x.ndim >= 2 else x, state.generator.params)
  state = state.replace(generator=state.generator.replace(params=params))
  run_info.write_run_info(workdir, config, SPEC, "synthetic")
  manager = checkpoints.manager(os.path.join(workdir, "checkpoints"))
  checkpoints.save(manager, state, step=0)
  manager.wait_until_finished()
  return workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("runs")
  return {name: write_run(str(root / name), name) for name in ("cgan", "dcgan")}


def export(workdir, out, batch_size=256, **request):
  count = generate.export(workdir, str(out), generate.Request(**request), batch_size=batch_size)
  if str(out).endswith(".npz"):
    with np.load(out) as f:
      return {k: f[k] for k in f.files}
  return count


@pytest.fixture(scope="module")
def plain(runs, tmp_path_factory):
  """Samples 0..39 of the conditional run (seed 0)."""
  return export(runs["cgan"], tmp_path_factory.mktemp("plain") / "plain.npz", num=40)


def test_seeds_are_the_images_of_a_plain_run(runs, plain, tmp_path):
  assert plain["images"].shape == (40, 8, 8, 3) and plain["images"].dtype == np.uint8
  np.testing.assert_array_equal(plain["indices"], np.arange(40))
  np.testing.assert_array_equal(plain["labels"], np.arange(40) % 10)
  assert plain["latents"].shape == (40, 8)
  picked = export(runs["cgan"], tmp_path / "picked.npz", seeds="3-5,38,1", batch_size=2)
  order = [3, 4, 5, 38, 1]
  for key in ("images", "labels", "latents", "indices"):
    np.testing.assert_array_equal(picked[key], plain[key][order])
  assert export(runs["cgan"], tmp_path / "pngs", seeds="3-5") == 3
  assert sorted(os.listdir(tmp_path / "pngs")) == ["000003.png", "000004.png", "000005.png"]
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "pngs" / "000004.png")),
                                plain["images"][4])


def test_class_gives_its_labels_and_per_class_every_class(runs, plain, tmp_path):
  third = export(runs["cgan"], tmp_path / "third.npz", num=6, label=3)
  np.testing.assert_array_equal(third["labels"], np.full(6, 3))
  np.testing.assert_array_equal(third["latents"], plain["latents"][:6])  # same latents
  np.testing.assert_array_equal(third["images"][3], plain["images"][3])  # sample 3 is class 3
  assert not np.array_equal(third["images"][:3], plain["images"][:3])
  every = export(runs["cgan"], tmp_path / "every.npz", num=2, per_class=True)
  np.testing.assert_array_equal(every["labels"], np.repeat(np.arange(10), 2))
  np.testing.assert_array_equal(every["images"][6:8], third["images"][:2])
  assert export(runs["cgan"], tmp_path / "grid.png", num=2, per_class=True) == 20
  assert Image.open(tmp_path / "grid.png").size == (2 * 10 + 2, 10 * 10 + 2)


def test_truncation_bounds_the_latents(runs, plain, tmp_path):
  assert np.abs(plain["latents"]).max() > 1.0
  cut = export(runs["cgan"], tmp_path / "cut.npz", num=40, truncation=0.5)
  assert np.abs(cut["latents"]).max() <= 0.5 and np.abs(cut["latents"]).max() > 0.4
  assert not np.array_equal(cut["images"], plain["images"])
  again = export(runs["cgan"], tmp_path / "again.npz", seeds="7", truncation=0.5)
  np.testing.assert_array_equal(again["images"][0], cut["images"][7])


def test_interpolation_ends_are_the_endpoint_samples(runs, plain, tmp_path):
  grid = export(runs["cgan"], tmp_path / "interp.npz", num=2, interpolate=True,
                interpolate_steps=4)
  assert grid["images"].shape == (2, 4, 8, 8, 3) and grid["latents"].shape == (2, 4, 8)
  np.testing.assert_array_equal(grid["endpoints"], [[0, 1], [2, 3]])
  np.testing.assert_array_equal(grid["labels"], [[0, 1], [2, 3]])  # across the samples' classes
  np.testing.assert_array_equal(grid["images"][:, [0, -1]].reshape(4, 8, 8, 3),
                                plain["images"][:4])
  np.testing.assert_array_equal(grid["latents"][:, [0, -1]].reshape(4, 8), plain["latents"][:4])
  cut = export(runs["cgan"], tmp_path / "cut.npz", seeds="5,9", interpolate=True, label=2,
               truncation=0.8, interpolate_steps=3)
  ends = export(runs["cgan"], tmp_path / "cut_ends.npz", seeds="5,9", label=2, truncation=0.8)
  np.testing.assert_array_equal(cut["images"][0, [0, -1]], ends["images"])
  np.testing.assert_array_equal(cut["labels"], [[2, 2]])
  assert export(runs["dcgan"], tmp_path / "plain.png", num=3, interpolate=True) == 24
  assert Image.open(tmp_path / "plain.png").size == (8 * 10 + 2, 3 * 10 + 2)


@pytest.mark.parametrize("run,out,request_,message", [
    ("cgan", "x.npz", dict(num=3, seeds="1"), "give exactly one of --num and --seeds"),
    ("cgan", "x.npz", dict(), "give exactly one of --num and --seeds"),
    ("cgan", "x.npz", dict(num=0), "--num must be at least 1"),
    ("cgan", "x.npz", dict(seeds="5-3"), "the range '5-3' runs backwards"),
    ("cgan", "x.npz", dict(seeds="1,x"), "cannot read 'x'"),
    ("cgan", "x.npz", dict(seeds="1,1"), "more than once"),
    ("cgan", "x.npz", dict(num=2, label=10), r"--class 10 is out of range.*\(0\.\.9\)"),
    ("cgan", "x.npz", dict(num=2, label=1, per_class=True), "exclude each other"),
    ("dcgan", "x.npz", dict(num=2, label=1), "--class needs a conditional generator"),
    ("dcgan", "x.npz", dict(num=2, per_class=True), "--per_class needs a conditional"),
    ("cgan", "x.npz", dict(num=2, truncation=0.0), "truncation must be a number > 0"),
    ("cgan", "x.npz", dict(num=2, truncation=-1.0), "truncation must be a number > 0"),
    ("cgan", "x.npz", dict(seeds="1-3", interpolate=True), "pairs of --seeds"),
    ("cgan", "x.npz", dict(num=1, interpolate=True, interpolate_steps=1), "at least 2"),
    ("cgan", "dir", dict(num=1, interpolate=True), "must end in .png or .npz"),
    ("cgan", "x.npz", dict(num=1, interpolate=True, per_class=True), "exclude each other"),
])
def test_bad_requests_are_errors(runs, tmp_path, run, out, request_, message):
  with pytest.raises(ConfigError, match=message):
    export(runs[run], tmp_path / out, **request_)
  assert not os.path.exists(tmp_path / out)


def _generate(*args: str) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-m", "ganjax.generate", *args], cwd=REPO_ROOT,
                          env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


@pytest.mark.slow
def test_command_line(runs, tmp_path):
  out = str(tmp_path / "cli.npz")
  good = _generate(f"--workdir={runs['cgan']}", "--seeds=3-5", "--class=3", "--truncation=0.5",
                   f"--out={out}", "--batch_size=2")
  bad = _generate(f"--workdir={runs['dcgan']}", "--num=4", "--class=3",
                  f"--out={tmp_path / 'bad.npz'}")
  (stdout, stderr), (_, bad_stderr) = good.communicate(timeout=600), bad.communicate(timeout=600)
  assert good.returncode == 0, stderr[-3000:]
  assert stdout.strip() == f"wrote 3 images to {out}"
  with np.load(out) as f:
    np.testing.assert_array_equal(f["labels"], [3, 3, 3])
    np.testing.assert_array_equal(f["indices"], [3, 4, 5])
    assert np.abs(f["latents"]).max() <= 0.5
  assert bad.returncode == 1
  lines = [l for l in bad_stderr.splitlines() if "error" in l.lower()]
  assert lines == ["ganjax: error: --class needs a conditional generator; this run's is "
                   "unconditional"], bad_stderr[-3000:]
