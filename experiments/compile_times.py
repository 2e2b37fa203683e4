"""Time to first step: the XLA compile time of every shipped config's training step.

  python experiments/compile_times.py [--configs dcgan,wgan] [--set unroll_critic=False]
      [--run_iterations 2]

For each GAN config in `ganjax.configs` (the classifier's is not a GAN), at its shipped widths
and batch size on CIFAR-10's shapes (32x32x3, 10 classes): `ganjax.gan.build.build_gan` with
the convolution backend of the mesh of all devices, as the trainer builds it, then one
`jax.jit` of the step with the state replicated and donated, lowered and compiled. It prints
the seconds to trace and lower, to compile, and, with ``--run_iterations N``, the seconds per
iteration of N iterations after the first (so a change that compiles faster can be checked
not to run slower), then one JSON line per config. Each config runs in its own process
(`subprocess`), so no config reuses another's compiled code or warmed-up caches.

``--set key=value`` overrides a config field for every config (``unroll_critic=False``: the
critic updates as one `lax.scan`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

if __package__ in (None, ""):  # run as a file, python experiments/...: import from the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NOT_GANS = ("classifier",)


def gan_configs() -> list[str]:
  from ganjax import configs  # pylint: disable=g-import-not-at-top
  return [name for name in configs.names() if name not in NOT_GANS]


def parse_value(text: str):
  """A ``--set`` value: a Python literal where it is one, the string otherwise."""
  import ast  # pylint: disable=g-import-not-at-top
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def measure(name: str, overrides: dict, run_iterations: int) -> dict:
  """Trace, lower and compile the step of config `name` (in this process); optionally run it."""
  import importlib  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from ganjax.data import DataSpec  # pylint: disable=g-import-not-at-top
  from ganjax.gan.build import build_gan  # pylint: disable=g-import-not-at-top
  from ganjax.ops import conv  # pylint: disable=g-import-not-at-top
  from ganjax.runtime import mesh as mesh_lib  # pylint: disable=g-import-not-at-top

  config = importlib.import_module(f"ganjax.configs.{name}").get_config()
  config.update(overrides)
  mesh = mesh_lib.make_mesh()
  spec = DataSpec((32, 32, 3), tuple(f"class {i}" for i in range(10)))
  gan = build_gan(config, spec, mesh_lib.data_sharding(mesh), conv.backend_for(mesh))
  replicated, batches = mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)
  n, b = config.n_critic, config.batch_size
  batch = jax.device_put(
      {"image": jax.random.uniform(jax.random.PRNGKey(1), (n, b, 32, 32, 3), jnp.float32,
                                   -1.0, 1.0),
       "label": jax.random.randint(jax.random.PRNGKey(2), (n, b), 0, 10)}, batches)
  state = jax.jit(gan.init, out_shardings=replicated)(jax.random.PRNGKey(0))
  step = jax.jit(gan.train_step(), in_shardings=(replicated, batches),
                 out_shardings=(replicated, replicated), donate_argnums=0)
  t0 = time.perf_counter()
  lowered = step.lower(state, batch)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  result = {"config": name, "n_critic": n, "batch": b, "unroll_critic": config.unroll_critic,
            "lower_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2)}
  if run_iterations:
    state, metrics = compiled(state, batch)  # the first call (buffers, caches)
    jax.block_until_ready((state, metrics))
    t0 = time.perf_counter()
    for _ in range(run_iterations):
      state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    result["s_per_iteration"] = round((time.perf_counter() - t0) / run_iterations, 3)
  return result


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--configs", default="", help="comma-separated config names (all GANs)")
  ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                  help="a config override applied to every config (repeatable)")
  ap.add_argument("--run_iterations", type=int, default=0,
                  help="also time this many iterations after the first")
  ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child process's config
  args = ap.parse_args()
  overrides = {}
  for item in args.set:
    key, sep, value = item.partition("=")
    if not sep:
      ap.error(f"--set takes KEY=VALUE, got {item!r}")
    overrides[key] = parse_value(value)
  if args.one:
    print(json.dumps(measure(args.one, overrides, args.run_iterations)))
    return
  known = gan_configs()
  names = [c for c in args.configs.split(",") if c] or known
  unknown = sorted(set(names) - set(known))
  if unknown:
    ap.error(f"unknown configs {unknown}; choose from {known}")
  results = []
  for name in names:
    command = [sys.executable, os.path.abspath(__file__), "--one", name,
               "--run_iterations", str(args.run_iterations)]
    command += [f"--set={item}" for item in args.set]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
      sys.exit(f"{name}: the measurement failed:\n{out.stderr[-2000:]}")
    results.append(json.loads(lines[-1]))
    print(json.dumps(results[-1]), flush=True)
  import jax  # pylint: disable=g-import-not-at-top
  from ganjax.ops import onednn  # pylint: disable=g-import-not-at-top
  print(f"\njax {jax.__version__}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}, convolutions: {onednn.status()}, overrides {overrides}")
  print("| config | n_critic | trace + lower (s) | XLA compile (s) | s/iteration |")
  print("|---|---|---|---|---|")
  for r in results:
    print(f"| {r['config']} | {r['n_critic']} | {r['lower_s']} | {r['compile_s']} | "
          f"{r.get('s_per_iteration', '')} |")


if __name__ == "__main__":
  main()
