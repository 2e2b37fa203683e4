"""Feature-extraction speed: ganjax's Inception extractor vs pytorch-fid, same images, one run.

  python -m experiments.bench_inception [--num 2000] [--batch 50] [--threads 2] [--synthetic]

Both sides get the same uint8 32x32 CIFAR-10 test images (the first `--num` of
``folder:/work/data/cifar10`` in `ganjax.data` order; ``--synthetic`` for `ganjax.data`'s
synthetic images) and the same random weights (`tests.random_inception.random_state_dict`), in
batches of `--batch`, resized to 299x299 inside each network:

* ganjax: ``ganjax.eval.inception.load(path, batch_size=B)(images)`` (jit over a mesh of all
  devices; compilation excluded by a warm-up batch);
* pytorch-fid: ``InceptionV3([3])`` on ``torch.from_numpy(images).permute(0, 3, 1, 2) / 255``
  under ``torch.no_grad()`` with ``torch.set_num_threads(T)`` (warm-up batch excluded).

The two run batch by batch in turn, so both see the same background load on a shared machine.

Prints images/s of each and the ratio. Image decoding is not timed on either side.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a file, python experiments/...: import from the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import torch

from ganjax import data
from ganjax.eval import convert_inception, inception
from tests import random_inception


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num", type=int, default=2000, help="images to extract features of")
  parser.add_argument("--batch", type=int, default=50, help="images per batch, both sides")
  parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
  parser.add_argument("--root", default="/work/data/cifar10",
                      help="CIFAR-10 image folder (the test split's images)")
  parser.add_argument("--synthetic", action="store_true",
                      help="ganjax.data's synthetic images instead of --root")
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  spec = f"synthetic:{args.num}" if args.synthetic else f"folder:{args.root}"
  images = data.load_dataset(spec, "test", 32).images[:args.num]
  state_dict = random_inception.random_state_dict(0)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "random.npz")
    inception.save_variables(
        convert_inception.convert_state_dict({k: v.numpy() for k, v in state_dict.items()}),
        path)
    extractor = inception.load(path, batch_size=args.batch)
  model = random_inception.pytorch_fid_model(state_dict)
  batches = [images[i:i + args.batch] for i in range(0, len(images), args.batch)]
  print(f"{len(images)} images of {spec} (uint8 32x32 -> 299x299), batch {args.batch}; "
        f"jax {jax.__version__} on {jax.device_count()} {jax.devices()[0].platform} device(s), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads", flush=True)

  def torch_features(b):
    with torch.no_grad():
      return model(torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255)[0]

  extractor(batches[0])  # compile
  torch_features(batches[0])  # warm-up
  # Interleaved, batch by batch, so that both sides see the same background load.
  seconds = {"ganjax": 0.0, "pytorch-fid": 0.0}
  for b in batches:
    t0 = time.perf_counter()
    extractor(b)
    t1 = time.perf_counter()
    torch_features(b)
    t2 = time.perf_counter()
    seconds["ganjax"] += t1 - t0
    seconds["pytorch-fid"] += t2 - t1
  ganjax_rate, torch_rate = (len(images) / seconds[k] for k in ("ganjax", "pytorch-fid"))
  print(f"ganjax:      {ganjax_rate:.2f} images/s", flush=True)
  print(f"pytorch-fid: {torch_rate:.2f} images/s", flush=True)
  print(f"ratio ganjax / pytorch-fid: {ganjax_rate / torch_rate:.2f}")


if __name__ == "__main__":
  main()
