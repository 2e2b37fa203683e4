"""Time to first step: the XLA compile time of every shipped config's training step.

  python experiments/compile_times.py [--configs dcgan,wgan] [--set unroll_critic=False]
      [--run_iterations 2]
  python experiments/compile_times.py --configs wgan --compare unroll_critic=False \
      --run_iterations 2 [--rounds 4]

For each GAN config in `ganjax.configs` (the classifier's is not a GAN), at its shipped widths
and batch size on CIFAR-10's shapes (32x32x3, 10 classes): `ganjax.gan.build.build_gan` with
the convolution backend of the mesh of all devices, as the trainer builds it, then one
`jax.jit` of the step with the state replicated and donated, lowered and compiled. It prints
the seconds to trace and lower, to compile, and, with ``--run_iterations N``, the seconds per
iteration of N iterations after the first (so a change that compiles faster can be checked
not to run slower), then one JSON line per config. Each config runs in its own process
(`subprocess`), so no config reuses another's compiled code or warmed-up caches.

``--set key=value`` overrides a config field for every config (``unroll_critic=False``: the
critic updates as one `lax.scan`). ``--compare key=value`` builds each config's step twice in
one process, as shipped (A) and with the override (B), and times ``--run_iterations`` in
alternating windows for ``--rounds`` rounds: ``ratio_b_vs_a`` (A's seconds / B's seconds in the
same round, median; above 1 when B runs faster) says whether a form that compiles faster runs as
fast, with the host's drift between processes cancelled out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

if __package__ in (None, ""):  # run as a file, python experiments/...: import from the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganjax import cli  # first: sets up the process as the tools do (host memory)

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


def compile_step(name: str, overrides: dict):
  """Trace, lower and compile the step of config `name` in this process.

  Returns ``(run, result)``: ``run(n)`` runs n iterations (the state carried between calls)
  and returns their seconds; ``result`` has the config's critic settings and the seconds to
  lower and to compile.
  """
  import importlib  # pylint: disable=g-import-not-at-top

  from experiments.bench_train_step import CompiledStep  # pylint: disable=g-import-not-at-top
  from ganjax.data import DataSpec  # pylint: disable=g-import-not-at-top

  config = importlib.import_module(f"ganjax.configs.{name}").get_config()
  config.update(overrides)
  step = CompiledStep(config, DataSpec((32, 32, 3), tuple(f"class {i}" for i in range(10))))
  result = {"config": name, "n_critic": step.gan.options.n_critic, "batch": config.batch_size,
            "unroll_critic": step.gan.options.unroll_critic,
            "lower_s": round(step.lower_s, 2), "compile_s": round(step.compile_s, 2)}
  return step.run, result


def measure(name: str, overrides: dict, run_iterations: int) -> dict:
  """`compile_step`'s result, with the seconds per iteration of `run_iterations` iterations
  after the first (which pays for buffers and caches)."""
  run, result = compile_step(name, overrides)
  if run_iterations:
    run(1)
    result["s_per_iteration"] = round(run(run_iterations) / run_iterations, 3)
  return result


def compare(name: str, overrides: dict, run_iterations: int, rounds: int) -> dict:
  """The shipped step (A) against the step with `overrides` (B), timed in alternating windows
  of `run_iterations` iterations in this process."""
  import statistics  # pylint: disable=g-import-not-at-top
  steps = {"a": compile_step(name, {}), "b": compile_step(name, overrides)}
  times = {key: [] for key in steps}
  for run, _ in steps.values():
    run(1)
  for r in range(rounds):
    for key in ("a", "b") if r % 2 == 0 else ("b", "a"):
      times[key].append(steps[key][0](run_iterations) / run_iterations)
  ratios = [a / b for a, b in zip(times["a"], times["b"])]
  result = {"config": name, "overrides": overrides}
  for key, (_, r) in steps.items():
    result[key] = dict(r, s_per_iteration=round(statistics.median(times[key]), 3))
  result.update(ratio_b_vs_a=round(statistics.median(ratios), 3),
                ratio_per_round=[round(x, 3) for x in ratios])
  return result


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--configs", default="", help="comma-separated config names (all GANs)")
  ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                  help="a config override applied to every config (repeatable)")
  ap.add_argument("--run_iterations", type=int, default=0,
                  help="also time this many iterations after the first (per window with "
                  "--compare)")
  ap.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE",
                  help="time the shipped step against the step with this override, in one "
                  "process (repeatable)")
  ap.add_argument("--rounds", type=int, default=4, help="alternating rounds with --compare")
  ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child process's config
  args = ap.parse_args()
  if args.set and args.compare:
    ap.error("--set and --compare do not combine: --compare measures the shipped step as A")
  overrides = {}
  for item in args.set + args.compare:
    key, sep, value = item.partition("=")
    if not sep:
      ap.error(f"--set and --compare take KEY=VALUE, got {item!r}")
    overrides[key] = parse_value(value)
  if args.compare and args.run_iterations < 1:
    ap.error("--compare times iterations: give --run_iterations N (N >= 1)")
  if args.one:
    if args.compare:
      print(json.dumps(compare(args.one, overrides, args.run_iterations, args.rounds)))
    else:
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
    command += [f"--compare={item}" for item in args.compare] + ["--rounds", str(args.rounds)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
      sys.exit(f"{name}: the measurement failed:\n{out.stderr[-2000:]}")
    results.append(json.loads(lines[-1]))
    print(json.dumps(results[-1]), flush=True)
  import jax  # pylint: disable=g-import-not-at-top
  from ganjax.ops import onednn  # pylint: disable=g-import-not-at-top
  print(f"\njax {jax.__version__}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}, convolutions: {onednn.status()}, overrides {overrides}; "
        f"{cli.HOST_MEMORY}")
  if args.compare:
    print("| config | n_critic | A: lower + compile (s) | B: lower + compile (s) | A s/iteration "
          "| B s/iteration | ratio_b_vs_a (rounds) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
      a, b = r["a"], r["b"]
      rounds = ", ".join(f"{x:.2f}" for x in r["ratio_per_round"])
      print(f"| {r['config']} | {a['n_critic']} | {a['lower_s']} + {a['compile_s']} | "
            f"{b['lower_s']} + {b['compile_s']} | {a['s_per_iteration']} | "
            f"{b['s_per_iteration']} | {r['ratio_b_vs_a']} ({rounds}) |")
    return
  print("| config | n_critic | trace + lower (s) | XLA compile (s) | s/iteration |")
  print("|---|---|---|---|---|")
  for r in results:
    print(f"| {r['config']} | {r['n_critic']} | {r['lower_s']} | {r['compile_s']} | "
          f"{r.get('s_per_iteration', '')} |")


if __name__ == "__main__":
  main()
