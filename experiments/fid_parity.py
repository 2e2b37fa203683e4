"""FID statistics of real CIFAR-10 images: ganjax.eval.fid vs pytorch-fid, same random weights.

  python -m experiments.fid_parity [--root /work/data/cifar10] [--num 10000]

1. Random FID Inception weights (`tests.random_inception.random_state_dict`, seed 0) are saved
   as a ``.pth`` and converted by ``python -m ganjax.eval.convert_inception``.
2. For each split (test, then train), the first `--num` images of ``folder:ROOT`` as
   `ganjax.data.load_dataset` orders them (uint8 32x32) go through
   `ganjax.eval.fid.reference_statistics` (ganjax's extractor, streaming float64 statistics).
3. The same uint8 arrays are written as PNG files (lossless, checked) and go through
   pytorch-fid's own pipeline: ``calculate_activation_statistics(files, InceptionV3([3]),
   batch_size=50)`` (PIL, ``ToTensor``, its resize and normalization, ``np.mean`` /
   ``np.cov`` of float64 features).
4. Prints max |mu_ganjax - mu_torch| / max |mu_torch| (likewise sigma) per split, and
   FID(train, test) by `ganjax.eval.fid.frechet_distance` on ganjax's statistics vs
   pytorch-fid's ``calculate_frechet_distance`` on its own.

Each side's statistics are saved in ``--out`` as they finish.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image

# pytorch-fid imports torchvision, which imports torch._dynamo and with it triton; triton's
# native library beside TensorFlow's (ganjax.data) crashes the process. pytorch-fid's CPU
# pipeline needs no triton (tests/conftest.py does the same).
sys.modules.setdefault("triton", None)
import torch  # pylint: disable=g-import-not-at-top,g-bad-import-order

if __package__ in (None, ""):  # run as a file, python experiments/...: import from the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganjax import data
from ganjax.eval import fid, inception, metrics
from pytorch_fid import fid_score
from tests import random_inception


def rel(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def write_pngs(images: np.ndarray, folder: str) -> list[str]:
  os.makedirs(folder, exist_ok=True)
  files = []
  for i, image in enumerate(images):
    path = os.path.join(folder, f"{i:05d}.png")
    if not os.path.exists(path):
      Image.fromarray(image).save(path)
    files.append(path)
  for i in (0, len(files) // 2, len(files) - 1):
    assert np.array_equal(np.asarray(Image.open(files[i]).convert("RGB")), images[i])
  return files


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--root", default="/work/data/cifar10", help="CIFAR-10 image folder")
  parser.add_argument("--num", type=int, default=10_000, help="images per split")
  parser.add_argument("--out", default="/tmp/ganjax_fid_parity",
                      help="weights, PNG files and both sides' statistics")
  parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  os.makedirs(args.out, exist_ok=True)
  pth, npz = os.path.join(args.out, "random_inception.pth"), os.path.join(args.out, "random.npz")
  state_dict = random_inception.random_state_dict(0)
  torch.save(state_dict, pth)
  subprocess.run([sys.executable, "-m", "ganjax.eval.convert_inception", f"--src={pth}",
                  f"--out={npz}"], check=True)
  extractor = inception.load(npz, batch_size=50)
  model = random_inception.pytorch_fid_model(state_dict)
  spec = f"folder:{args.root}"
  print(f"images: the first {args.num} of {spec} per split (ganjax.data order), uint8 32x32; "
        f"weights: random (seed 0), converted by ganjax.eval.convert_inception", flush=True)
  ours, theirs = {}, {}
  for split in ("test", "train"):
    dataset = data.load_dataset(spec, split, 32)
    t0 = time.time()
    stats, key = fid.reference_statistics(spec, split, extractor, num_images=args.num,
                                          image_size=32, loaded=dataset,
                                          cache_dir=os.path.join(args.out, "cache"))
    t_ours = time.time() - t0
    files = write_pngs(dataset.images[:args.num], os.path.join(args.out, f"png_{split}"))
    t0 = time.time()
    mu, sigma = fid_score.calculate_activation_statistics(files, model, batch_size=50,
                                                          dims=2048, device="cpu",
                                                          num_workers=0)
    t_theirs = time.time() - t0
    np.savez(os.path.join(args.out, f"pytorch_fid_{split}.npz"), mu=mu, sigma=sigma)
    ours[split], theirs[split] = stats, (mu, sigma)
    print(f"[{split}] {key}: {stats.count} images; ganjax {t_ours:.0f} s "
          f"({stats.count / t_ours:.1f} img/s), pytorch-fid {t_theirs:.0f} s "
          f"({len(files) / t_theirs:.1f} img/s)", flush=True)
    print(f"[{split}] mu: max abs diff / max abs = {rel(stats.mu, mu):.3g}; sigma: "
          f"{rel(stats.sigma, sigma):.3g}  (max |mu| {np.max(np.abs(mu)):.4g}, max |sigma| "
          f"{np.max(np.abs(sigma)):.4g})", flush=True)
  ours_fid = fid.frechet_distance(ours["train"].mu, ours["train"].sigma, ours["test"].mu,
                                  ours["test"].sigma)
  theirs_fid = fid_score.calculate_frechet_distance(*theirs["train"], *theirs["test"])
  print(f"FID(train {args.num}, test {args.num}): ganjax {ours_fid:.6f}, pytorch-fid "
        f"{theirs_fid:.6f}, abs diff {abs(ours_fid - theirs_fid):.3g}, rel diff "
        f"{abs(ours_fid - theirs_fid) / abs(theirs_fid):.3g}", flush=True)
  print("protocol: " + metrics.protocol(("fid",), f"{spec}:train (n={args.num})", args.num,
                                        extractor))


if __name__ == "__main__":
  main()
