"""Per-layer CPU timing of the DCGAN's convolutions: forward + backward (input and kernel grads).

  python -m experiments.layer_bench [--rounds 5] [--batch 64] [--only up,down,s1] [--forms ...]

Each JAX form in `experiments.layer_forms` and PyTorch channels_last run in alternating windows
in this one process; the figure per form is the median over rounds of (torch time / form time)
in the same round, so load from other processes on the machine cancels out. The JAX forms are
XLA's convolutions (YNNPACK), except ``onednn`` (ganjax's oneDNN convolutions, `ganjax.ops.onednn`,
with their default algorithm per pass).
"""
import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ""):  # run as a file, python experiments/...: import from the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import torch

from experiments import layer_forms as lf
from ganjax.ops import onednn


def jax_fn(form):
  def f(x, k, g):
    y, vjp = jax.vjp(form, x, k)
    return y, *vjp(g)
  return jax.jit(f)


def timeit(fn, reps):
  fn()
  t = time.perf_counter()
  for _ in range(reps):
    fn()
  return (time.perf_counter() - t) / reps


def torch_layer(kind, c, f, h, n):
  x = torch.randn(n, c, h, h).to(memory_format=torch.channels_last).requires_grad_()
  if kind == "up":
    w = torch.randn(c, f, 4, 4, requires_grad=True)
    op = lambda: torch.nn.functional.conv_transpose2d(x, w, stride=2, padding=1)
  elif kind == "down":
    w = torch.randn(f, c, 4, 4).to(memory_format=torch.channels_last).requires_grad_()
    op = lambda: torch.nn.functional.conv2d(x, w, stride=2, padding=1)
  else:
    w = torch.randn(f, c, 3, 3).to(memory_format=torch.channels_last).requires_grad_()
    op = lambda: torch.nn.functional.conv2d(x, w, padding=1)
  y = op()
  g = torch.randn_like(y)

  def run():
    x.grad = None
    w.grad = None
    op().backward(g)
  return run


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--rounds", type=int, default=5)
  ap.add_argument("--reps", type=int, default=3, help="calls per form and round")
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--only", default="up,down,s1",
                  help="layer groups: up (transposed), down (strided), s1 (3x3 stride 1)")
  ap.add_argument("--forms", default=None, help="comma-separated form names to time (default all)")
  ap.add_argument("--torch_threads", type=int, default=2)
  args = ap.parse_args()
  torch.set_num_threads(args.torch_threads)
  n = args.batch
  s1 = lambda x, k: lf.conv(x, k, padding=((1, 1), (1, 1)))
  s1_onednn = lambda x, k: onednn.conv(x, k, (1, 1), ((1, 1), (1, 1)))
  groups = {
      "up": (lf.UP_LAYERS, lf.UP, lambda h: 2 * h, 4),
      "down": (lf.DOWN_LAYERS, lf.DOWN, lambda h: h // 2, 4),
      "s1": (lf.S1_LAYERS, {"lax": s1, "onednn": s1_onednn}, lambda h: h, 3),
  }
  rng = np.random.default_rng(0)
  for kind in args.only.split(","):
    layers, forms, out_hw, ks = groups[kind]
    for c, f, h in layers:
      x = jnp.asarray(rng.standard_normal((n, h, h, c), np.float32))
      k = jnp.asarray(rng.standard_normal((ks, ks, c, f), np.float32) * 0.05)
      g = jnp.asarray(rng.standard_normal((n, out_hw(h), out_hw(h), f), np.float32))
      keep = set(args.forms.split(",")) if args.forms else set(forms)
      fns = {name: jax_fn(form) for name, form in forms.items() if name in keep}
      runs = {name: (lambda fn=fn: jax.block_until_ready(fn(x, k, g))) for name, fn in fns.items()}
      runs["torch_cl"] = torch_layer(kind, c, f, h, n)
      times = {name: [] for name in runs}
      for _ in range(args.rounds):
        for name, run in runs.items():
          times[name].append(timeit(run, args.reps))
      flop = 2 * n * out_hw(h) ** 2 * f * c * ks * ks * 3 / (4 if kind == "up" else 1)
      line = f"{kind:4s} C={c:3d} F={f:3d} H={h:2d}  {flop/1e9:5.2f} GFLOP  "
      for name in runs:
        ratio = statistics.median(t / tt for t, tt in zip(times["torch_cl"], times[name]))
        line += f"| {name} {statistics.median(times[name])*1e3:7.1f} ms x{ratio:4.2f} "
      print(line, flush=True)


if __name__ == "__main__":
  main()
