"""A population step (K GANs in one vmapped jit) against K sequential single-run steps.

  python experiments/bench_population.py [--sizes 4,8,16] [--width 16] [--batch 32]
                                         [--rounds 3] [--window 2] [--no_xla]

For each K: `ganjax.population.build.PopulationGAN`'s step (``jax.vmap`` of the pure train step
over K stacked DCGAN states, own batches per member, one `jax.jit`, state donated) and K
single-run steps (the same config's `train_step` under one `jax.jit`, called once per member)
are timed in alternating windows after compilation and warm-up, on fixed synthetic 32x32
batches (data loading excluded). Both are built and jitted as the trainers build them
(`build_population` / `build_gan` with the convolution backend of the mesh of all devices,
state replicated, batches split over the mesh). One "population iteration" = one update of all
K GANs either way, so

  speedup = (K sequential single steps, seconds) / (one population step, seconds)

and population steps/s * K = GAN-updates/s. Other processes share the machine's cores, so
absolute speeds drift; the ratio within a round is the figure that counts (median over rounds).

The convolutions are those of the process (oneDNN on one CPU device when its extension is
built); unless ``--no_xla``, the same sizes are then measured again in a child process with
``GANJAX_ONEDNN=0`` (XLA's convolutions, the kernels a GPU or TPU user gets, here on the CPU),
and a last table puts both speedups side by side.

Measured on the shared 2-core CPU with XLA's convolutions (before ganjax ran them on oneDNN;
``GANJAX_ONEDNN=0`` now), width 16, batch 32, load average 9-12: speedup 0.82x at K=1, 0.33x at
K=4, 0.35x at K=8 -- the population step was about 3x SLOWER than K sequential steps.
`jax.vmap` of a convolution whose weights carry the member axis becomes one grouped
convolution (``feature_group_count=K``), and XLA's CPU backend runs grouped convolutions on a
slow path (like the other layout-sensitive convolution cases in docs/PERF_NOTES.md). The
oneDNN convolutions take the member axis as a batch of independent convolutions
(`ganjax.ops.onednn`), not as one grouped convolution: each member's minibatch is one work item
when the members divide evenly over the threads. The README ("Populations") has the measured
speedups with both kinds of convolution.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

if __package__ in (None, ""):  # run as a file, python experiments/...: import from the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganjax import cli  # first: sets up the process as the tools do (host memory)


def parse_args(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--sizes", default="4,8,16", help="comma-separated population sizes K")
  ap.add_argument("--width", type=int, default=16, help="generator and discriminator width")
  ap.add_argument("--z_dim", type=int, default=64)
  ap.add_argument("--batch", type=int, default=32, help="batch per member")
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument("--window", type=int, default=2, help="iterations per timing window")
  ap.add_argument("--no_xla", action="store_true",
                  help="skip the second measurement with XLA's convolutions")
  return ap.parse_args(argv)


def _config(args, k):
  from ganjax.configs import default  # pylint: disable=g-import-not-at-top
  c = default.get_config()
  c.update(dataset="synthetic:256", image_size=32, batch_size=args.batch)
  c.generator.update(width=args.width, z_dim=args.z_dim)
  c.discriminator.update(width=args.width)
  c.population.update(size=k, sweep="d_optimizer.learning_rate=" + ",".join(
      f"{2e-4 * (1 + i / 4):g}" for i in range(k)) if k > 1 else "")
  return c


def bench(args, k):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ganjax import data  # pylint: disable=g-import-not-at-top
  from ganjax.gan.build import build_gan  # pylint: disable=g-import-not-at-top
  from ganjax.ops import conv  # pylint: disable=g-import-not-at-top
  from ganjax.population import build as population  # pylint: disable=g-import-not-at-top
  from ganjax.runtime import mesh as mesh_lib  # pylint: disable=g-import-not-at-top

  config = _config(args, k)
  dataset = data.load_dataset(config.dataset, "train", 32)
  spec = data.DataSpec(dataset.image_shape, dataset.class_names)
  batches = [data.training_batch(dataset, seed=s, step=0, batch_size=args.batch)
             for s in range(k)]
  mesh = mesh_lib.make_mesh()
  backend, replicated = conv.backend_for(mesh), mesh_lib.replicated(mesh)
  in_step = mesh_lib.data_sharding(mesh)  # the batch's sharding constraint inside the step

  if k > 1:
    pop = population.build_population(config, spec, in_step, backend)
  else:  # a population of one: the vmapped step over a member axis of size 1
    pop = population.PopulationGAN(build_gan(config, spec, in_step, backend),
                                   population.Population(1, {}, False), (0,), {}, {})
  member_batches = mesh_lib.batch_sharding(mesh, 2)  # [K, n_critic, B, ...]
  pop_state = jax.jit(pop.init, out_shardings=replicated)(pop.rngs())
  pop_step = jax.jit(pop.train_step(), in_shardings=(replicated, member_batches, replicated),
                     out_shardings=(replicated, replicated), donate_argnums=0)
  hyper = {n: jnp.asarray(v) for n, v in pop.hyper.items()}
  stacked = jax.device_put(jax.tree.map(lambda *x: np.stack(x), *batches), member_batches)
  gan = build_gan(config, spec, in_step, backend)  # the same program for every member
  single_batch = mesh_lib.batch_sharding(mesh)  # [n_critic, B, ...]
  single_step = jax.jit(gan.train_step(), in_shardings=(replicated, single_batch),
                        out_shardings=(replicated, replicated), donate_argnums=0)
  singles = [jax.jit(gan.init, out_shardings=replicated)(jax.random.PRNGKey(i))
             for i in range(k)]
  single_batches = [jax.device_put(b, single_batch) for b in batches]

  def run_population(n):
    nonlocal pop_state
    for _ in range(n):
      pop_state, m = pop_step(pop_state, stacked, hyper)
    jax.block_until_ready(m)

  def run_sequential(n):
    for _ in range(n):
      for i in range(k):
        singles[i], m = single_step(singles[i], single_batches[i])
    jax.block_until_ready(m)

  runners = {"sequential": run_sequential, "population": run_population}
  for run in runners.values():  # compile and warm up
    run(2)
  times = {name: [] for name in runners}
  for r in range(args.rounds):
    order = list(runners) if r % 2 == 0 else list(runners)[::-1]
    for name in order:
      t0 = time.perf_counter()
      runners[name](args.window)
      times[name].append((time.perf_counter() - t0) / args.window)
  seq = statistics.median(times["sequential"])
  out = {"K": k, "sequential_iters_per_s": 1.0 / seq,
         "sequential_gan_updates_per_s": k / seq}
  pop_t = statistics.median(times["population"])
  ratios = [s / p for s, p in zip(times["sequential"], times["population"])]
  out.update(population_iters_per_s=1.0 / pop_t, population_gan_updates_per_s=k / pop_t,
             speedup_median=statistics.median(ratios), speedup_per_round=ratios)
  return out


def _convolutions() -> str:
  from ganjax.ops import onednn  # pylint: disable=g-import-not-at-top
  return f"oneDNN ({onednn.status()})" if onednn.available() else "XLA's"


def _xla_results(argv) -> dict[int, dict]:
  """The same measurement in a child process with XLA's convolutions: {K: result}."""
  argv = list(sys.argv[1:] if argv is None else argv) + ["--no_xla"]
  env = dict(os.environ, GANJAX_ONEDNN="0")
  out = subprocess.run([sys.executable, os.path.abspath(__file__), *argv], env=env,
                       capture_output=True, text=True, check=False)
  for line in out.stdout.splitlines():
    if not line.startswith("RESULT"):
      print(f"  (XLA) {line}", flush=True)
  if out.returncode:
    sys.exit(f"the measurement with XLA's convolutions failed:\n{out.stderr[-2000:]}")
  results = [json.loads(l[len("RESULT "):]) for l in out.stdout.splitlines()
             if l.startswith("RESULT ")]
  return {r["K"]: r for r in results}


def main(argv=None):
  args = parse_args(argv)
  with open("/proc/loadavg") as f:
    load = f.read().split()[:3]
  print(f"loadavg at start: {' '.join(load)}; convolutions: {_convolutions()}; "
        f"{cli.HOST_MEMORY}", flush=True)
  results = {}
  for k in [int(s) for s in args.sizes.split(",")]:
    r = results[k] = bench(args, k)
    print(f"K={k}: population {r['population_iters_per_s']:.3f} steps/s "
          f"({r['population_gan_updates_per_s']:.2f} GAN-updates/s) vs {k} sequential "
          f"{r['sequential_iters_per_s']:.3f} rounds/s "
          f"({r['sequential_gan_updates_per_s']:.2f} GAN-updates/s): speedup "
          f"{r['speedup_median']:.2f}x (rounds: "
          f"{', '.join(f'{x:.2f}' for x in r['speedup_per_round'])})", flush=True)
    print("RESULT " + json.dumps(r), flush=True)
  with open("/proc/loadavg") as f:
    print(f"loadavg at end: {' '.join(f.read().split()[:3])}", flush=True)
  if args.no_xla:
    return
  xla = _xla_results(argv)

  def cell(r: dict) -> str:
    rounds = ", ".join(f"{x:.2f}" for x in r["speedup_per_round"])
    return f"{r['speedup_median']:.2f}x ({rounds}); {r['population_gan_updates_per_s']:.2f}"

  print("\nspeedup over K sequential single runs (median; rounds); population GAN-updates/s")
  print(f"| K | {_convolutions()} | XLA's convolutions (GANJAX_ONEDNN=0) |")
  print("|---|---|---|")
  for k, r in results.items():
    print(f"| {k} | {cell(r)} | {cell(xla[k])} |")


if __name__ == "__main__":
  main()
