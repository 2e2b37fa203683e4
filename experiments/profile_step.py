"""Where the CPU time of ganjax's training iteration goes, per XLA thunk and per convolution.

  python -m experiments.profile_step --model dcgan [--iterations 2] [bench_train_step options]

Builds the same jitted step as `experiments.bench_train_step` (the trainer's step, no PyTorch
side; its options for the JAX step, ``--xla_flags`` and ``--variant`` included, apply), runs one
warm-up iteration, traces `--iterations` iterations with `jax.profiler.trace`, and reads the
trace (the XSpace protobuf, through TensorFlow's copy of the proto) together with the optimized
HLO of the same executable. It prints:

* thread time per kind of thunk, summed over XLA's worker threads (``ynn_fusion`` is a
  convolution or dot run by YNNPACK; the rest are XLA's own loop fusions and copies);
* per YNNPACK fusion (the convolutions XLA runs itself, all of them with ``GANJAX_ONEDNN=0``):
  time, GFLOP (2 x output size x window x input features, from the HLO) and GFLOP/s, grouped
  into forward / input-gradient convolutions (small windows) and kernel-gradient convolutions
  (XLA writes ``dW`` as a convolution whose window is the whole image), then the slowest
  fusions;
* per oneDNN call (`ganjax.ops.onednn`): calls and wall time of the calling thread per
  iteration, by pass, operand shapes and algorithm.

Thread times are summed over the worker threads, so they can exceed wall time when thunks run
side by side; compare them as fractions. A YNNPACK fusion can itself use every core (its
parallel loops), so its GFLOP/s is the rate while it runs, not a per-core figure.
"""

from __future__ import annotations

import collections
import glob
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file, python experiments/...: import from the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import bench_train_step

_SHAPE = r"f32\[([\d,]*)\]"


def _dims(text: str) -> list[int]:
  return [int(v) for v in text.split(",")] if text else []


def _operand_shape(body: str, name: str) -> list[int]:
  return _dims(re.search(r"%" + re.escape(name) + r" = " + _SHAPE, body).group(1))


def fusion_ops(hlo: str) -> dict[str, list[tuple[str, float, str]]]:
  """``{ynn fusion name: [(kind, flops, description), ...]}`` from optimized HLO text."""
  bodies = {m.group(1): m.group(0) for m in re.finditer(
      r"^%(fused_computation[\.\d]*) \(.*?^}", hlo, re.S | re.M)}
  calls = dict(re.findall(r"%(ynn_fusion[\.\d]*) = .*?calls=%(fused_computation[\.\d]*)", hlo))
  out = {}
  for fusion, comp in calls.items():
    body, ops = bodies[comp], []
    for m in re.finditer(r"= " + _SHAPE + r"\S* convolution\(%(\S+), %(\S+)\), "
                         r"window=\{size=(\S+)[^}]*\}, dim_labels=(\S+)->\S+", body):
      out_shape, lhs, rhs, window, labels = m.groups()
      kernel = _operand_shape(body, rhs)
      in_features = kernel[labels.split("_")[1].index("i")]
      size = [int(v) for v in window.split("x")]
      flops = 2 * math.prod(_dims(out_shape)) * math.prod(size) * in_features
      kind = "kernel-gradient conv" if min(size) > 4 or (
          size == [4, 4] and _dims(out_shape)[1] < 4) else "forward / input-gradient conv"
      ops.append((kind, flops, f"[{','.join(map(str, _operand_shape(body, lhs)))}] * "
                  f"[{','.join(map(str, kernel))}] window {window} -> [{out_shape}]"))
    for m in re.finditer(r"= " + _SHAPE + r"\S* dot\(%(\S+), %(\S+)\), (?:lhs_batch_dims="
                         r"\{[\d,]*\}, )?lhs_contracting_dims=\{([\d,]*)\}", body):
      out_shape, lhs, _, contracting = m.groups()
      lhs_shape = _operand_shape(body, lhs)
      k = math.prod(lhs_shape[int(c)] for c in contracting.split(","))
      ops.append(("dot", 2 * math.prod(_dims(out_shape)) * k,
                  f"dot [{','.join(map(str, lhs_shape))}] -> [{out_shape}]"))
    out[fusion] = ops
  return out


def ffi_calls(hlo: str) -> dict[str, str]:
  """``{ffi_call name: "pass [operand] * [operand] (algorithm)"}`` for the oneDNN calls, and
  ``"channel_sums [operand]"`` for batch norm's sums."""
  # Imported here, not at the top: it starts JAX, which must come after --xla_flags.
  from ganjax.ops import onednn  # pylint: disable=g-import-not-at-top

  out = {}
  for m in re.finditer(r"%(ffi_call[\.\d]*) = .*?custom_call_target=\"ganjax_onednn_conv_(\w+)\", "
                       r"operand_layout_constraints=\{f32\[([\d,]*)\]\S*, f32\[([\d,]*)\]"
                       r".*?algorithm = (\d)", hlo):
    name, which, a, b, code = m.groups()
    algorithm = next(k for k, v in onednn.ALGORITHMS.items() if v == int(code))
    out[name] = f"{which} [{a}] * [{b}] ({algorithm})"
  # Batch norm's one-pass sums (`ganjax.ops.batch_norm`), the extension's other handler.
  for m in re.finditer(r"%(ffi_call[\.\d]*) = .*?custom_call_target=\"ganjax_channel_sums\", "
                       r"operand_layout_constraints=\{f32\[([\d,]*)\]", hlo):
    out[m.group(1)] = f"channel_sums [{m.group(2)}]"
  return out


def thunk_times(trace_dir: str) -> tuple[collections.Counter, collections.Counter]:
  """(milliseconds, count) per thunk name, summed over XLA's worker threads."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top

  path = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)[0]
  space = xplane_pb2.XSpace()
  space.ParseFromString(Path(path).read_bytes())
  ms, count = collections.Counter(), collections.Counter()
  for plane in space.planes:
    names = {k: v.name for k, v in plane.event_metadata.items()}
    for line in plane.lines:
      if not line.name.startswith("tf_XLAEigen"):
        continue
      for event in line.events:
        name = names.get(event.metadata_id, "?")
        if not name.startswith("ThunkExecutor"):
          ms[name] += event.duration_ps / 1e9
          count[name] += 1
  return ms, count


def main(argv: list[str] | None = None) -> None:
  ap = bench_train_step.make_parser(__doc__.split("\n\n")[0])
  ap.add_argument("--iterations", type=int, default=2, help="iterations to trace")
  ap.add_argument("--top", type=int, default=15, help="slowest YNNPACK fusions to list")
  args = ap.parse_args(argv)
  work = tempfile.mkdtemp(prefix="ganjax_profile_")
  args.skip_torch, args.dump_hlo = True, f"{work}/step.hlo"
  bench_train_step.apply_xla_flags(args)  # before JAX starts
  run, _, _, _ = bench_train_step.build_jax_step(args)
  import jax  # pylint: disable=g-import-not-at-top

  run(1)
  t0 = time.perf_counter()
  with jax.profiler.trace(f"{work}/trace"):
    run(args.iterations)
  wall = (time.perf_counter() - t0) / args.iterations
  ms, count = thunk_times(f"{work}/trace")
  hlo = Path(f"{work}/step.hlo").read_text()
  ops = fusion_ops(hlo)
  n = args.iterations
  total = sum(ms.values()) / n
  print(f"{args.model}, batch {args.batch}: {wall * 1e3:.0f} ms/iteration wall (traced), "
        f"{total:.0f} ms of thunk time per iteration over {jax.local_devices()[0].platform} "
        f"worker threads; load average {os.getloadavg()[0]:.1f}")
  kinds = collections.Counter()
  for name, t in ms.items():
    kinds[re.sub(r"\.\d+$", "", name)] += t / n
  print("| thunk kind | ms/iteration | share |\n|---|---|---|")
  for kind, t in kinds.most_common(10):
    print(f"| {kind} | {t:.0f} | {t / total:.1%} |")
  groups = collections.defaultdict(lambda: [0.0, 0.0, 0])
  rows = []
  for name, t in ms.items():
    if name not in ops:
      continue
    flops = sum(f for _, f, _ in ops[name]) * count[name] / n
    kind = ops[name][0][0] if ops[name] else "other"
    g = groups[kind]
    g[0], g[1], g[2] = g[0] + t / n, g[1] + flops, g[2] + 1
    rows.append((t / n, flops, name, "; ".join(d for _, _, d in ops[name])))
  print("\n| YNNPACK fusions | count | ms/iteration | GFLOP/iteration | GFLOP/s while running |\n"
        "|---|---|---|---|---|")
  for kind, (t, flops, k) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
    print(f"| {kind} | {k} | {t:.0f} | {flops / 1e9:.1f} | {flops / 1e6 / t:.0f} |")
  calls = ffi_calls(hlo)
  if calls:
    per_call = collections.defaultdict(lambda: [0.0, 0])
    for name, desc in calls.items():
      per_call[desc][0] += ms[name] / n
      per_call[desc][1] += count[name] / n
    print("\n| extension call (wall time of the calling thread) | calls/iteration | ms/iteration |\n"
          "|---|---|---|")
    for desc, (t, k) in sorted(per_call.items(), key=lambda kv: -kv[1][0]):
      print(f"| {desc} | {k:.0f} | {t:.1f} |")
  print(f"\nslowest {args.top} YNNPACK fusions (ms/iteration, GFLOP/s while running):")
  for t, flops, name, desc in sorted(rows, reverse=True)[:args.top]:
    print(f"  {t:7.1f} ms {flops / 1e6 / t:6.1f} GF/s  {name}: {desc}")


if __name__ == "__main__":
  main()
