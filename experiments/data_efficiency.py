"""Discriminator overfitting on 10 % of CIFAR-10, with and without DiffAugment, on one budget.

  python -m experiments.data_efficiency run --data folder:/tmp/data/cifar10 --workdir DIR
      [--cpu_minutes 60] [--split 'train[:10%]'] [--policy color,translation,cutout] [--seed 0]
      [--width 32]
  python -m experiments.data_efficiency analyze --workdir DIR [--images 1024]

``run`` trains the DCGAN config (`configs/dcgan.py`, unchanged but for the data and, by default,
half its channel width: ``--width 32``, a quarter of the compute per step) twice at the same
time, ``DIR/plain`` without augmentation and ``DIR/diffaugment`` with DiffAugment (Zhao et
al. 2020) on every image the discriminator sees, from the same seed, through
``python -m ganjax.main``. Both get the same CPU-time budget: when a run has used
``--cpu_minutes`` of CPU (user + system time of all its threads, from ``/proc``) it receives
SIGTERM and checkpoints (the trainer's preemption path), however loaded the machine was; the CPU
time each used in all is read from ``wait4`` and printed. With ``--one_core_each 1`` (the default) each run
is pinned to a core of its own (OpenMP and XLA's Eigen pool at one thread), so each gets one CPU for the
whole budget however loaded the machine is. Checkpoints (every ``--checkpoint_every`` steps,
all kept) and sample grids (every ``--samples_every`` steps) are the runs' own.

``analyze`` reads every checkpoint of both runs and scores the discriminator in training mode
(batch norm on the batch, as in its updates; batches of 64 of one kind) on fixed sets of
``--images`` images each: the training images (the first of the slice), held-out real images
(CIFAR-10's test split) and generated images (seed 0). Per checkpoint:

* ``rt_train``: E[sign(D(x))] on training images: the overfitting heuristic of ADA (Karras et
  al. 2020), +1 when D calls every training image real with confidence;
* ``rt_heldout``: the same on held-out real images;
* ``acc_train`` / ``acc_heldout``: the fraction of training / held-out real images D calls real
  (D(x) > 0);
* ``acc_fake``: the fraction of generated images D calls fake.

A discriminator that memorizes its training images keeps ``acc_train`` high while
``acc_heldout`` falls (it calls unseen real images fake). It writes ``DIR/analysis.json``, a
markdown table ``DIR/analysis.md``, a plot ``DIR/overfitting.png`` and a strip of sample grids
over time ``DIR/samples_over_time.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

RUNS = ("plain", "diffaugment")


def _train_command(args: argparse.Namespace, name: str) -> list[str]:
  command = [sys.executable, "-m", "ganjax.main", "--config=configs/dcgan.py",
             f"--workdir={os.path.join(args.workdir, name)}",
             f"--config.dataset={args.data}", f"--config.split={args.split}",
             f"--config.seed={args.seed}", "--config.num_train_steps=1000000",
             f"--config.checkpoint_every_steps={args.checkpoint_every}",
             "--config.keep_checkpoints=1000",
             f"--config.sample_every_steps={args.samples_every}",
             "--config.log_every_steps=50",
             f"--config.generator.width={args.width}",
             f"--config.discriminator.width={args.width}"]
  if name == "diffaugment":
    command.append(f"--config.diffaugment={args.policy}")
  return command


def _one_core(core: int) -> None:
  """In the child: run on `core` only, ahead of other work on the machine where allowed."""
  os.sched_setaffinity(0, {core})
  try:
    os.nice(-10)
  except OSError:
    pass


def _cpu_seconds(pid: int) -> float:
  """CPU time (user + system, all threads) a running process has used, from /proc."""
  with open(f"/proc/{pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args: argparse.Namespace) -> None:
  """Both trainings side by side, each stopped at the same CPU-time budget; prints their use."""
  os.makedirs(args.workdir, exist_ok=True)
  procs = {}
  cores = sorted(os.sched_getaffinity(0))
  for i, name in enumerate(RUNS):
    log = open(os.path.join(args.workdir, f"{name}.log"), "w")
    env = dict(os.environ)
    preexec = None
    if args.one_core_each and len(cores) >= len(RUNS):
      env.update(OMP_NUM_THREADS="1", XLA_FLAGS=(env.get("XLA_FLAGS", "") +
                                                 " --xla_cpu_multi_thread_eigen=false").strip())
      preexec = functools.partial(_one_core, cores[i])
    procs[name] = subprocess.Popen(_train_command(args, name), stdout=log,
                                   stderr=subprocess.STDOUT, env=env, preexec_fn=preexec)
  start = time.monotonic()
  budget = 60 * args.cpu_minutes
  summary, stopping = {}, set()
  while len(summary) < len(procs):
    time.sleep(2)
    for name, p in procs.items():
      if name in summary:
        continue
      pid, status, usage = os.wait4(p.pid, os.WNOHANG)
      if pid:  # ended: its status and resource use, reaped here (Popen.poll would lose them)
        summary[name] = {"exit_status": os.waitstatus_to_exitcode(status),
                         "cpu_seconds": usage.ru_utime + usage.ru_stime,
                         "wall_seconds": time.monotonic() - start}
      elif name not in stopping and _cpu_seconds(p.pid) >= budget:
        p.send_signal(signal.SIGTERM)  # the trainer checkpoints and exits (status 75)
        stopping.add(name)
  with open(os.path.join(args.workdir, "budget.json"), "w") as f:
    json.dump(summary, f, indent=2)
  for name, s in summary.items():
    print(f"{name}: exit {s['exit_status']}, {s['cpu_seconds'] / 60:.1f} CPU minutes in "
          f"{s['wall_seconds'] / 60:.1f} minutes")


# -- analysis -----------------------------------------------------------------------------------


def _first(dataset, count: int) -> np.ndarray:
  from ganjax import data  # pylint: disable=g-import-not-at-top
  return data.to_float(dataset.images[:count])


def _d_outputs(loaded, images: np.ndarray, batch: int = 64) -> np.ndarray:
  """D's raw outputs in training mode (each batch normalized on itself; updates dropped)."""
  import jax  # pylint: disable=g-import-not-at-top
  from ganjax.gan.steps import apply_model  # pylint: disable=g-import-not-at-top

  variables = dict(loaded.discriminator_variables)
  params = variables.pop("params")

  @jax.jit
  def score(x):
    out, _ = apply_model(loaded.discriminator, params, variables, x, None, train=True,
                         rng=jax.random.PRNGKey(0))
    return out["adv"].reshape(-1)

  if len(images) % batch:
    raise ValueError(f"{len(images)} images are not whole batches of {batch}")
  return np.concatenate([np.asarray(score(images[i:i + batch]))
                         for i in range(0, len(images), batch)])


def _generated(loaded, count: int) -> np.ndarray:
  from ganjax import data  # pylint: disable=g-import-not-at-top
  from ganjax.eval.sampling import Sampler  # pylint: disable=g-import-not-at-top
  from ganjax.runtime import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  sampler = Sampler(loaded.gan, mesh_lib.make_mesh(), 256)
  images = np.concatenate([x for x, _ in sampler.batches(loaded.state.sampling_variables,
                                                         count, seed=0)])
  return data.to_float(images)


def _scores(d_train: np.ndarray, d_heldout: np.ndarray, d_fake: np.ndarray) -> dict[str, float]:
  return {"rt_train": float(np.mean(np.sign(d_train))),
          "rt_heldout": float(np.mean(np.sign(d_heldout))),
          "acc_train": float(np.mean(d_train > 0)),
          "acc_heldout": float(np.mean(d_heldout > 0)),
          "acc_fake": float(np.mean(d_fake < 0))}


def analyze(args: argparse.Namespace) -> None:
  """Scores every checkpoint of both runs; writes the table, plot and sample strip."""
  from ganjax import data, tasks  # pylint: disable=g-import-not-at-top
  from ganjax.runtime import checkpoints  # pylint: disable=g-import-not-at-top
  from ganjax.runtime.run_info import read_run_info  # pylint: disable=g-import-not-at-top

  config, _ = read_run_info(os.path.join(args.workdir, RUNS[0]))
  train = _first(data.load_dataset(config.dataset, config.split, config.image_size), args.images)
  heldout = _first(data.load_dataset(config.dataset, config.test_split, config.image_size),
                   args.images)
  results = {}
  for name in RUNS:
    workdir = os.path.join(args.workdir, name)
    steps = sorted(checkpoints.complete_steps(os.path.join(workdir, "checkpoints")))
    results[name] = []
    for step in steps:
      loaded = tasks.load_run(workdir, step)
      fake = _generated(loaded, args.images)
      row = {"step": step, **_scores(_d_outputs(loaded, train), _d_outputs(loaded, heldout),
                                     _d_outputs(loaded, fake))}
      results[name].append(row)
      print(name, json.dumps(row), flush=True)
  with open(os.path.join(args.workdir, "analysis.json"), "w") as f:
    json.dump(results, f, indent=2)
  _write_table(args.workdir, results)
  _plot(args.workdir, results)
  _sample_strip(args.workdir)


def _write_table(workdir: str, results: dict) -> None:
  keys = ("rt_train", "rt_heldout", "acc_train", "acc_heldout", "acc_fake")
  lines = ["| run | step | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
  for name, rows in results.items():
    for row in rows:
      lines.append(f"| {name} | {row['step']} | " +
                   " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
  with open(os.path.join(workdir, "analysis.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


def _plot(workdir: str, results: dict) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for name, rows in results.items():
    steps = [r["step"] for r in rows]
    axes[0].plot(steps, [r["rt_train"] for r in rows], label=f"{name}: training images")
    axes[0].plot(steps, [r["rt_heldout"] for r in rows], "--", label=f"{name}: held-out")
    axes[1].plot(steps, [r["acc_train"] for r in rows], label=f"{name}: training images")
    axes[1].plot(steps, [r["acc_heldout"] for r in rows], "--", label=f"{name}: held-out")
    axes[2].plot(steps, [r["acc_fake"] for r in rows], label=name)
  axes[0].set_title("r_t = E[sign D(x)] on real images")
  axes[1].set_title("D's accuracy on real images (D(x) > 0)")
  axes[2].set_title("D's accuracy on generated images (D(G(z)) < 0)")
  for ax in axes:
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "overfitting.png"), dpi=90)


def _sample_strip(workdir: str, count: int = 5) -> None:
  """Rows: the runs; columns: sample grids at `count` steps spread over the shorter run."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grids = {}
  for name in RUNS:
    folder = os.path.join(workdir, name, "samples")
    files = sorted((int(f.split("_")[-1].split(".")[0]), os.path.join(folder, f))
                   for f in os.listdir(folder) if f.endswith(".png") and "_" in f)
    grids[name] = dict(files)
  common = sorted(set.intersection(*(set(g) for g in grids.values())))
  if not common:
    return
  picks = [common[int(round(i * (len(common) - 1) / max(count - 1, 1)))] for i in range(count)]
  picks = sorted(set(picks))
  tiles = [[Image.open(grids[name][s]).convert("RGB") for s in picks] for name in RUNS]
  w, h = tiles[0][0].size
  strip = Image.new("RGB", (w * len(picks), h * len(RUNS)), "white")
  for r, row in enumerate(tiles):
    for c, tile in enumerate(row):
      strip.paste(tile.resize((w, h)), (c * w, r * h))
  strip.save(os.path.join(workdir, "samples_over_time.png"))
  print(f"samples_over_time.png: rows {RUNS}, steps {picks}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  r = sub.add_parser("run")
  r.add_argument("--data", required=True, help="data set spec, e.g. folder:/tmp/data/cifar10")
  r.add_argument("--workdir", required=True)
  r.add_argument("--cpu_minutes", type=float, default=60.0, help="CPU time each run gets "
                 "(user + system, all its threads); it is then stopped with SIGTERM")
  r.add_argument("--split", default="train[:10%]")
  r.add_argument("--policy", default="color,translation,cutout")
  r.add_argument("--seed", type=int, default=0)
  r.add_argument("--width", type=int, default=32, help="channel width of both players (the "
                 "config's 64 is 4x the compute per step)")
  r.add_argument("--one_core_each", type=int, default=1, help="pin each run to its own core "
                 "(one thread; nice -10 where allowed), so each gets one CPU for the budget "
                 "whatever else runs")
  r.add_argument("--checkpoint_every", type=int, default=200)
  r.add_argument("--samples_every", type=int, default=200)
  a = sub.add_parser("analyze")
  a.add_argument("--workdir", required=True)
  a.add_argument("--images", type=int, default=1024)
  args = parser.parse_args()
  {"run": run, "analyze": analyze}[args.command](args)


if __name__ == "__main__":
  main()
