"""ganjax's training iteration against the same iteration in PyTorch, on the CPU.

  python -m experiments.bench_train_step --model dcgan   [--rounds 8] [--window 3]
  python -m experiments.bench_train_step --model wgan_gp [--xla_flags="..."] [variant options]

Fairness: both frameworks run in this one process, in alternating timing windows (JAX then
PyTorch, the order flipping every round), each window `--window` iterations after warm-up and
compilation, on the same synthetic batch (data loading is excluded from both). Other processes
share the machine's cores, so absolute speeds drift; the figure that counts is
ratio_vs_torch = (PyTorch time per iteration) / (JAX time per iteration) in the same round, and
its median over rounds. PyTorch uses 2 threads (torch.set_num_threads), JAX its default
thread pool (one thread per core). XLA flags are read when JAX starts, so each flag set needs its
own process: pass them with --xla_flags (applied before JAX is imported).

The JAX side is ganjax's real step, built as the trainer builds it: the shipped ``dcgan`` /
``wgan_gp`` config (`ganjax.configs`) with this script's batch, widths, LeakyReLU slope and
critic normalization, `ganjax.gan.build.build_gan` with the convolution backend of the mesh of
all devices (`ganjax.ops.conv.backend_for`), one `jax.jit` with the state replicated and
donated and the batch split over the mesh. ``--up_impl`` / ``--down_impl`` choose the form of
the generator's transposed and the discriminator's strided convolutions (`ganjax.ops.conv`),
``--variant`` the research patches of `experiments.variants`; ``--variant_b``,
``--up_impl_b`` and ``--down_impl_b`` time a second JAX step with those changes in the same
rounds. PyTorch is `tests.torch_reference` (eager, channels_last unless --torch_format=nchw).
One iteration = n_critic discriminator updates + one generator update, batch 64; images/s
counts the generator batch (64 per iteration).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path


if __package__ in (None, ""):  # run as a file, python experiments/...: import from the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganjax import cli  # first: sets up the process as the tools do (host memory)


def make_parser(description: str = __doc__.split("\n\n")[0]) -> argparse.ArgumentParser:
  """This benchmark's options (`experiments.benchmark_train` adds its own)."""
  ap = argparse.ArgumentParser(description=description)
  ap.add_argument("--model", choices=["dcgan", "wgan_gp"], default="dcgan")
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--width", type=int, default=64)
  ap.add_argument("--rounds", type=int, default=8)
  ap.add_argument("--window", type=int, default=3, help="iterations per timing window")
  ap.add_argument("--xla_flags", default=None, help="appended to XLA_FLAGS before JAX starts")
  ap.add_argument("--torch_format", choices=["channels_last", "nchw"], default="channels_last")
  ap.add_argument("--torch_extra", default="",
                  help="comma-separated extra PyTorch sides timed in the same rounds: 'nchw' "
                       "(eager, contiguous NCHW) and 'compile' (torch.compile of G and D, "
                       "channels_last; DCGAN only: Inductor has no double backward for the "
                       "gradient penalty)")
  ap.add_argument("--torch_threads", type=int, default=2)
  ap.add_argument("--torch_flush_denormal", action="store_true",
                  help="torch.set_flush_denormal(True) (XLA's CPU code flushes denormals already)")
  ap.add_argument("--critic_norm", choices=["layer", "none"], default="layer",
                  help="WGAN-GP critic normalization (ganjax's config uses layer norm)")
  ap.add_argument("--negative_slope", type=float, default=0.1,
                  help="LeakyReLU slope of both discriminators (the shipped configs keep "
                       "the model's 0.2)")
  ap.add_argument("--up_impl", default="auto",
                  help="UpConv impl of the JAX generator (ganjax.ops.conv: auto, onednn, "
                       "phase, transpose)")
  ap.add_argument("--down_impl", default="auto",
                  help="DownConv impl of the JAX discriminator (ganjax.ops.conv: auto, onednn, "
                       "phase, strided)")
  ap.add_argument("--scan_critic", action="store_true",
                  help="lax.scan over the critic updates (default: as the config chooses)")
  ap.add_argument("--variant", default="",
                  help="comma-separated research variants (see experiments.variants: "
                       "onednn_direct)")
  ap.add_argument("--variant_b", default=None,
                  help="also time a second JAX step with these variants added (same process, "
                       "alternating windows); reports jax_b's ratio to torch and to jax")
  ap.add_argument("--up_impl_b", default=None, help="UpConv impl of the second JAX step")
  ap.add_argument("--down_impl_b", default=None, help="DownConv impl of the second JAX step")
  ap.add_argument("--skip_torch", action="store_true")
  ap.add_argument("--dump_hlo", default=None, help="write the optimized HLO text here")
  ap.add_argument("--compile_only", action="store_true",
                  help="compile (and --dump_hlo) the JAX step, report slow-path convolutions, exit")
  ap.add_argument("--json", default=None, help="append the result as a JSON line to this file")
  return ap


def parse_args(argv=None):
  return make_parser().parse_args(argv)


def apply_xla_flags(args) -> None:
  """Appends ``--xla_flags`` to XLA_FLAGS (read once, when JAX starts: call this first)."""
  if args.xla_flags:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + args.xla_flags).strip()


def jax_config(args):
  """The shipped config of ``--model`` with this benchmark's batch, widths and critic."""
  from ganjax.configs import dcgan, wgan_gp  # pylint: disable=g-import-not-at-top

  wgan = args.model == "wgan_gp"
  config = (wgan_gp if wgan else dcgan).get_config()
  config.batch_size = args.batch
  if args.scan_critic:  # else the config's choice (`ganjax.gan.build.critic_unrolled`)
    config.unroll_critic = False
  config.generator.update(z_dim=128, width=args.width)
  config.discriminator.update(width=args.width, negative_slope=args.negative_slope,
                              norm=args.critic_norm if wgan else "batch")
  return config


class CompiledStep:
  """A GAN's training step as the trainer builds it, jitted and compiled, with its inputs.

  `build_gan` with the convolution backend of the mesh of all devices, one `jax.jit` with the
  state replicated and donated and the batch (``n_critic`` synthetic real batches of CIFAR-10's
  shapes, labels drawn from the spec's classes) split over the mesh. ``run(n)`` runs n
  iterations, carrying the state between calls, and returns their seconds; ``lower_s`` and
  ``compile_s`` are the seconds to trace and lower, and XLA's compile.
  """

  def __init__(self, config, spec=None):
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    from ganjax.data import DataSpec  # pylint: disable=g-import-not-at-top
    from ganjax.gan.build import build_gan  # pylint: disable=g-import-not-at-top
    from ganjax.ops import conv  # pylint: disable=g-import-not-at-top
    from ganjax.runtime import mesh as mesh_lib  # pylint: disable=g-import-not-at-top

    self.config, self.spec = config, spec or DataSpec((32, 32, 3), ())
    mesh = mesh_lib.make_mesh()
    self.build = lambda c: build_gan(c, self.spec, mesh_lib.data_sharding(mesh),
                                     conv.backend_for(mesh))  # the GAN of config `c`
    self.gan = self.build(config)
    replicated, batches = mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)
    n, b = self.gan.options.n_critic, config.batch_size
    self.images = jax.random.uniform(jax.random.PRNGKey(1), (n, b, *self.spec.image_shape),
                                     jnp.float32, -1.0, 1.0)
    labels = jax.random.randint(jax.random.PRNGKey(2), (n, b), 0, max(1, self.spec.num_classes))
    self.batch = jax.device_put({"image": self.images, "label": labels}, batches)
    self.state = jax.jit(self.gan.init, out_shardings=replicated)(jax.random.PRNGKey(0))
    jitted = jax.jit(self.gan.train_step(), in_shardings=(replicated, batches),
                     out_shardings=(replicated, replicated), donate_argnums=0)
    t0 = time.perf_counter()
    lowered = jitted.lower(self.state, self.batch)
    t1 = time.perf_counter()
    self.compiled = lowered.compile()
    self.lower_s, self.compile_s = t1 - t0, time.perf_counter() - t1

  def run(self, n: int) -> float:
    import jax  # pylint: disable=g-import-not-at-top
    t0 = time.perf_counter()
    state = self.state
    for _ in range(n):
      state, metrics = self.compiled(state, self.batch)
    jax.block_until_ready((state, metrics))
    self.state = state
    return time.perf_counter() - t0

  def flops(self) -> float | None:
    """FLOPs per iteration by XLA's cost analysis of the same step with XLA's convolutions
    (it cannot see into the oneDNN calls), unrolled (it counts a loop's body once)."""
    import jax  # pylint: disable=g-import-not-at-top
    from ganjax.ops import onednn  # pylint: disable=g-import-not-at-top
    unrolled = self.config.copy_and_resolve_references()
    unrolled.unroll_critic = True
    try:
      with onednn.disabled():
        cost = jax.jit(self.build(unrolled).train_step()).lower(
            self.state, self.batch).cost_analysis()
      cost = cost[0] if isinstance(cost, list) else cost
      return float(cost.get("flops", 0.0))
    except Exception:  # pylint: disable=broad-except  # cost analysis is best effort
      return None


def build_jax_step(args, extra_variants=(), up_impl=None, down_impl=None):
  """``(run, images, seconds to lower and compile, flops)`` of the `CompiledStep` of
  ``--model`` with this benchmark's settings, convolution forms and research variants."""
  from experiments import variants  # pylint: disable=g-import-not-at-top
  from ganjax.models import dcgan  # pylint: disable=g-import-not-at-top
  from ganjax.ops import conv  # pylint: disable=g-import-not-at-top

  # The forms of the 4x4 stride-2 convolutions, for the models traced from here on.
  dcgan.UpConv = functools.partial(conv.UpConv, impl=up_impl or args.up_impl)
  dcgan.DownConv = functools.partial(conv.DownConv, impl=down_impl or args.down_impl)
  variants.apply((args.variant.split(",") if args.variant else []) + list(extra_variants))
  step = CompiledStep(jax_config(args))
  if args.dump_hlo:
    Path(args.dump_hlo).write_text(step.compiled.as_text())
  if args.compile_only:
    print(json.dumps({"compile_s": round(step.compile_s, 1), "generic_path_convolutions":
                      generic_path_convolutions(step.compiled.as_text())}))
    sys.exit(0)
  return step.run, np_images(step.images), step.lower_s + step.compile_s, step.flops()


def generic_path_convolutions(hlo_text: str) -> int:
  """Convolutions left outside YNNPACK fusions in an optimized CPU HLO module."""
  count = 0
  ynn_computations = set()
  for line in hlo_text.splitlines():
    if '"kind":"__ynn_fusion"' in line and "calls=" in line:
      ynn_computations.add(line.split("calls=")[1].split(",")[0].strip())
  current = None
  for line in hlo_text.splitlines():
    if line and not line.startswith(" ") and "{" in line:
      current = line.split()[0].lstrip("%") if not line.startswith("ENTRY") else "ENTRY"
    elif " convolution(" in line and ("%" + str(current)) not in ynn_computations \
        and current not in ynn_computations:
      count += 1
  return count


def np_images(images):
  import numpy as np
  return np.asarray(images)


def build_torch_step(args, images, torch_format=None, compile_modules=False):
  import torch  # pylint: disable=g-import-not-at-top

  from tests import torch_reference as tr  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(args.torch_threads)
  if args.torch_flush_denormal:
    torch.set_flush_denormal(True)
  torch.manual_seed(0)
  channels_last = (torch_format or args.torch_format) == "channels_last"
  if args.model == "wgan_gp":
    if compile_modules:
      raise SystemExit("--torch_extra=compile: torch.compile has no double backward for the "
                       "gradient penalty; use it with --model dcgan")
    it = tr.WGANGPIteration(args.batch, args.width, channels_last=channels_last,
                            norm=args.critic_norm, negative_slope=args.negative_slope)
    real = it.to_device_format(torch.from_numpy(images.copy()))
  else:
    it = tr.DCGANIteration(args.batch, args.width, channels_last=channels_last,
                           negative_slope=args.negative_slope, compile_modules=compile_modules)
    real = it.to_device_format(torch.from_numpy(images[0].copy()))

  def run(n):
    for _ in range(n):
      out = it(real)
    return out

  return run


def main(argv=None):
  args = parse_args(argv)
  apply_xla_flags(args)

  jax_run, images, compile_s, flops = build_jax_step(args)
  runs = {"jax": jax_run}
  if args.variant_b is not None or args.up_impl_b or args.down_impl_b:
    # The first step is compiled already: the patches of the second do not reach it.
    runs["jax_b"] = build_jax_step(args, [v for v in (args.variant_b or "").split(",") if v],
                                   args.up_impl_b, args.down_impl_b)[0]
  if not args.skip_torch:
    runs["torch"] = build_torch_step(args, images)
    for extra in filter(None, args.torch_extra.split(",")):
      if extra not in ("nchw", "compile"):
        raise SystemExit(f"--torch_extra: unknown side {extra!r}; expected nchw or compile")
      runs[f"torch_{extra}"] = build_torch_step(
          args, images, torch_format="nchw" if extra == "nchw" else "channels_last",
          compile_modules=extra == "compile")
  for run in runs.values():  # warm-up (first-call allocations, oneDNN primitive caches)
    run(2)
  times = {name: [] for name in runs}
  for r in range(args.rounds):
    order = list(runs) if r % 2 == 0 else list(runs)[::-1]
    for name in order:
      t0 = time.perf_counter()
      runs[name](args.window)
      times[name].append((time.perf_counter() - t0) / args.window)
  per_it = {name: statistics.median(ts) for name, ts in times.items()}
  result = {
      "model": args.model, "batch": args.batch, "variant": args.variant,
      "up_impl": args.up_impl, "down_impl": args.down_impl, "scan_critic": args.scan_critic,
      "xla_flags": os.environ.get("XLA_FLAGS", ""), "torch_format": args.torch_format,
      "torch_flush_denormal": args.torch_flush_denormal,
      "load_average_1min": round(os.getloadavg()[0], 1), "host_memory": cli.HOST_MEMORY,
      "critic_norm": args.critic_norm if args.model == "wgan_gp" else "batch",
      "compile_s": round(compile_s, 1),
      "gflop_per_iter": round(flops / 1e9, 1) if flops else None,
      "jax_images_per_s": round(args.batch / per_it["jax"], 2),
      "round_ms": {name: [round(1e3 * t) for t in ts] for name, ts in times.items()},
  }
  if "torch" in runs:
    ratios = sorted(tt / tj for tj, tt in zip(times["jax"], times["torch"]))
    result.update({
        "torch_images_per_s": round(args.batch / per_it["torch"], 2),
        "ratio_vs_torch": round(statistics.median(ratios), 3),
        "ratio_min_max": [round(ratios[0], 3), round(ratios[-1], 3)],
    })
  for extra in (name for name in runs if name.startswith("torch_")):
    result[f"{extra}_images_per_s"] = round(args.batch / per_it[extra], 2)
  if "jax_b" in runs:
    result["variant_b"] = args.variant_b
    result["up_impl_b"] = args.up_impl_b
    result["down_impl_b"] = args.down_impl_b
    result["jax_b_images_per_s"] = round(args.batch / per_it["jax_b"], 2)
    result["ratio_b_vs_a"] = round(statistics.median(
        ta / tb for ta, tb in zip(times["jax"], times["jax_b"])), 3)
    if "torch" in runs:
      result["ratio_b_vs_torch"] = round(statistics.median(
          tt / tb for tb, tt in zip(times["jax_b"], times["torch"])), 3)
  print(json.dumps(result), flush=True)
  if args.json:
    with open(args.json, "a") as f:
      f.write(json.dumps(result) + "\n")
  return result


if __name__ == "__main__":
  main()
