"""ganjax's training iteration against PyTorch on the same work: images/s, ratio, GFLOP, peak.

  python -m experiments.benchmark_train --model dcgan   [--rounds 6] [--window 3]
  python -m experiments.benchmark_train --model wgan_gp [--rounds 6] [--window 1]
  python -m experiments.benchmark_train --model dcgan --full_table   # every variant below

`--full_table` adds, in the same rounds: for DCGAN, ganjax with the generator's transposed
convolutions in their dilated form (UpConv impl='transpose', the computation of
`flax.linen.ConvTranspose`), PyTorch eager NCHW and PyTorch `torch.compile` (channels_last);
for WGAN-GP, PyTorch eager NCHW (Inductor has no double backward for the gradient penalty, and
the dilated generator takes minutes per iteration).

The measurement is `experiments.bench_train_step`'s (ganjax's real step as the trainer builds
it with `ganjax.gan.build.build_gan`, one `jax.jit`, state donated, against
`tests.torch_reference`'s eager PyTorch iteration of the same architecture, optimizer and batch,
in one process and alternating timing windows after warm-up; any of its options can be passed
through, ``--help`` lists them). This front end adds the machine's measured
float32 matmul peak (the best of a few 2048^3 `jnp.dot`s, GFLOP/s) and prints a table:

  | side | images/s | ms/iteration | GFLOP/s | fraction of matmul peak |

with the XLA compile time and GFLOP per iteration (XLA's cost analysis of the step lowered with
XLA's own convolutions, since it cannot see into the oneDNN calls; counting multiply and add as
two), then, as its last line, ``ratio_vs_torch=<float>``: the
median over rounds of (PyTorch time / JAX time) in the same round (> 1: ganjax is faster).
Images/s count the generator batch per iteration (a WGAN-GP iteration also runs 5 critic
updates on their own real batches).

`--augment_costs` times instead, in the same alternating rounds, ganjax's step of ``--model``
without augmentation and with each augmentation of data-efficient training before every
discriminator call (`ganjax.gan.steps`): DiffAugment ``color``, ``translation``, ``cutout`` and
all three, and ADA's 'bgc' pipeline at a fixed p = 0.5, and prints images/s and the cost
relative to the step without augmentation:

  python -m experiments.benchmark_train --model dcgan --augment_costs [--rounds 6] [--window 2]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

if __package__ in (None, ""):  # run as a file, python experiments/...: import from the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import bench_train_step  # imports no JAX: XLA flags still apply


def matmul_peak_gflops(n: int = 2048, reps: int = 5) -> float:
  """The best float32 GFLOP/s of an n x n x n `jnp.dot` on the default device."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  best = float("inf")
  for _ in range(reps):
    t0 = time.perf_counter()
    dot(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 / best / 1e9


def table(result: dict, peak: float) -> str:
  batch, gflop = result["batch"], result.get("gflop_per_iter")
  rows = [("ganjax (JAX)", result["jax_images_per_s"])]
  if "jax_b_images_per_s" in result:
    b = ", ".join(filter(None, [result.get("variant_b"),
                                result.get("up_impl_b") and f"UpConv impl={result['up_impl_b']!r}",
                                result.get("down_impl_b") and
                                f"DownConv impl={result['down_impl_b']!r}"]))
    if result.get("up_impl_b") == "transpose":
      b += " (flax.linen.ConvTranspose's dilated convolution)"
    rows.append((f"ganjax with {b}", result["jax_b_images_per_s"]))
  if "torch_images_per_s" in result:
    rows.append((f"PyTorch eager, {result['torch_format']}", result["torch_images_per_s"]))
  for key, name in (("torch_nchw", "PyTorch eager, NCHW"),
                    ("torch_compile", "PyTorch torch.compile, channels_last")):
    if f"{key}_images_per_s" in result:
      rows.append((name, result[f"{key}_images_per_s"]))
  lines = ["| side | images/s | ms/iteration | GFLOP/s | fraction of matmul peak |",
           "|---|---|---|---|---|"]
  for name, rate in rows:
    seconds = batch / rate
    gflops = gflop / seconds if gflop else float("nan")
    lines.append(f"| {name} | {rate:.2f} | {1e3 * seconds:.0f} | {gflops:.0f} | "
                 f"{gflops / peak:.2f} |")
  return "\n".join(lines)


# (row name, config overrides) of `--augment_costs`; ADA with target 0 keeps p at its start.
AUGMENTATIONS = (
    ("none", {}),
    ("DiffAugment color", {"diffaugment": "color"}),
    ("DiffAugment translation", {"diffaugment": "translation"}),
    ("DiffAugment cutout", {"diffaugment": "cutout"}),
    ("DiffAugment color,translation,cutout", {"diffaugment": "color,translation,cutout"}),
    ("ADA bgc, p = 0.5", {"ada_initial_p": 0.5}),
)


def _augmented_step(args, overrides: dict):
  """``run(n)``: n iterations of ``--model``'s step with `overrides`
  (`experiments.bench_train_step.CompiledStep`)."""
  config = bench_train_step.jax_config(args)
  config.update(overrides)
  return bench_train_step.CompiledStep(config).run


def augment_costs(args) -> dict[str, float]:
  """Images/s of the step with each of `AUGMENTATIONS` (median over alternating rounds)."""
  runs = {name: _augmented_step(args, overrides) for name, overrides in AUGMENTATIONS}
  for run in runs.values():  # warm-up
    run(1)
  times = {name: [] for name in runs}
  for r in range(args.rounds):
    for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
      t0 = time.perf_counter()
      runs[name](args.window)
      times[name].append((time.perf_counter() - t0) / args.window)
  return {name: args.batch / statistics.median(ts) for name, ts in times.items()}


def augment_table(rates: dict[str, float], batch: int) -> str:
  base = rates["none"]
  lines = ["| augmentation before D | images/s | ms/iteration | time relative to none |",
           "|---|---|---|---|"]
  for name, rate in rates.items():
    lines.append(f"| {name} | {rate:.2f} | {1e3 * batch / rate:.0f} | {base / rate:.3f} |")
  return "\n".join(lines)


def _without_xla_flags(argv: list[str]) -> list[str]:
  """`argv` minus ``--xla_flags=V`` / ``--xla_flags V`` (already applied here)."""
  out, skip = [], False
  for a in argv:
    if skip:
      skip = False
    elif a == "--xla_flags":
      skip = True
    elif not a.startswith("--xla_flags="):
      out.append(a)
  return out


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  parser = bench_train_step.make_parser(__doc__.split("\n\n")[0])
  parser.add_argument("--full_table", action="store_true",
                      help="also time, in the same rounds, the dilated generator (DCGAN), "
                           "PyTorch eager NCHW and torch.compile (DCGAN)")
  parser.add_argument("--augment_costs", action="store_true",
                      help="time the step without augmentation and with each DiffAugment "
                           "policy and ADA (p = 0.5) instead of against PyTorch")
  args = parser.parse_args(argv)
  if args.augment_costs:
    bench_train_step.apply_xla_flags(args)  # before JAX starts
    rates = augment_costs(args)
    import jax  # pylint: disable=g-import-not-at-top
    print(f"{args.model}, batch {args.batch}, width {args.width}; {args.rounds} rounds of "
          f"{args.window} iterations; jax {jax.__version__} on {jax.device_count()} "
          f"{jax.devices()[0].platform} device(s); {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(augment_table(rates, args.batch))
    return
  argv = [a for a in argv if a != "--full_table"]
  if args.full_table:
    # The dilated (ConvTranspose) generator runs its kernel gradients on XLA's generic path:
    # minutes per WGAN-GP iteration, so that row is DCGAN's only, as is torch.compile's.
    argv += (["--torch_extra=nchw"] if args.model == "wgan_gp" else
             ["--up_impl_b=transpose", "--torch_extra=nchw,compile"])
  bench_train_step.apply_xla_flags(args)  # before JAX starts
  peak = matmul_peak_gflops()
  # Prints its JSON result line, then the table below.
  result = bench_train_step.main(_without_xla_flags(argv))
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  print(f"{result['model']}, batch {result['batch']}; jax {jax.__version__} on "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s), torch {torch.__version__} "
        f"with {args.torch_threads} threads; {os.cpu_count()} cores, load average "
        f"{result['load_average_1min']}; XLA_FLAGS={result['xla_flags']!r}")
  print(f"XLA compile: {result['compile_s']} s; GFLOP per iteration (XLA cost analysis): "
        f"{result['gflop_per_iter']}; measured float32 matmul peak: {peak:.0f} GFLOP/s")
  print(table(result, peak))
  if "ratio_vs_torch" in result:
    low, high = result["ratio_min_max"]
    print(f"ratio over {args.rounds} rounds of {args.window} iterations: median "
          f"{result['ratio_vs_torch']}, min {low}, max {high}")
    print(f"ratio_vs_torch={result['ratio_vs_torch']}")


if __name__ == "__main__":
  main()
