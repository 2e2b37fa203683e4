"""Every oneDNN implementation of every pass of the DCGAN layers, timed alone on one thread.

  python experiments/onednn_implementations.py [--images 32]

Compiles `experiments/onednn_implementations.cc` against the oneDNN library the extension links
(`ganjax.ops.onednn.library_path`, with the vendored headers), runs it
over the DCGAN's convolutions (`experiments.layer_forms`' layer lists; the generator's transposed
convolutions as the strided convolutions whose input gradient they are), a chunk of `--images`
images (the share of one thread of a batch-64 step on 2 cores), and prints per pass oneDNN's
first choice, the fastest timed implementation, and every timing:

  | layer | pass | first choice | fastest | all timed |

ganjax's extension takes oneDNN's first choice of direct implementation, or its own im2col +
GEMM form (`ganjax.ops.onednn.default_algorithm`), which this program does not time
(docs/PERF_NOTES.md compares the two per pass in JAX).
"""

from __future__ import annotations

import argparse
import collections
from importlib import metadata
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments import layer_forms  # pylint: disable=g-import-not-at-top,wrong-import-position


def dcgan_layers(images: int) -> list[tuple[str, list[int]]]:
  """(name, [N, C, H, W, F, K, S, P]) of the DCGAN's convolutions (`layer_forms`' lists); a
  transposed convolution C -> F as the strided convolution F -> C whose input gradient it is."""
  up = [(f"G up {c}->{f} at {h} (transposed)", [images, f, 2 * h, 2 * h, c, 4, 2, 1])
        for c, f, h in layer_forms.UP_LAYERS]
  down = [(f"D {c}->{f} at {h} 4x4 s2", [images, c, h, h, f, 4, 2, 1])
          for c, f, h in layer_forms.DOWN_LAYERS]
  s1 = [(f"{c}->{f} at {h} 3x3", [images, c, h, h, f, 3, 1, 1])
        for c, f, h in layer_forms.S1_LAYERS]
  return down + s1 + up


def build(out_dir: str) -> str:
  from ganjax.ops import onednn  # pylint: disable=g-import-not-at-top
  try:
    library = onednn.library_path().resolve()
  except (ImportError, metadata.PackageNotFoundError) as e:
    sys.exit(f"onednn_implementations: {e}")
  binary = os.path.join(out_dir, "onednn_implementations")
  subprocess.run(["g++", "-std=c++17", "-O2", "-fopenmp",
                  f"-I{os.path.join(ROOT, 'csrc', 'third_party')}",
                  os.path.join(ROOT, "experiments", "onednn_implementations.cc"),
                  f"-L{library.parent}", "-l:libdnnl.so.3", f"-Wl,-rpath,{library.parent}",
                  "-o", binary], check=True)
  return binary


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--images", type=int, default=32, help="images per convolution")
  args = ap.parse_args(argv)
  binary = build(tempfile.mkdtemp(prefix="ganjax_onednn_impls_"))
  layers = dcgan_layers(args.images)
  cmd = [binary] + [str(v) for name, dims in layers for v in [name, *dims]]
  out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
  rows = collections.defaultdict(list)
  for line in out.splitlines():
    name, which, _, ms, impl = line.split("\t")
    rows[(name, which)].append((None if ms == "-" else float(ms), impl))
  print(f"{args.images} images, one thread; median of 9 (ms)\n")
  print("| layer | pass | first choice | fastest | all timed |\n|---|---|---|---|---|")
  for (name, which), impls in rows.items():
    timed = [(ms, impl) for ms, impl in impls if ms is not None]
    first, fastest = timed[0], min(timed)
    every = ", ".join(f"{impl} {ms:.2f}" for ms, impl in timed)
    print(f"| {name} | {which} | {first[1]} {first[0]:.2f} | {fastest[1]} {fastest[0]:.2f} | "
          f"{every} |")


if __name__ == "__main__":
  main()
