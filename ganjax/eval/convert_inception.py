"""Converts pytorch-fid's Inception weights to Flax: ``python -m ganjax.eval.convert_inception``.

``[--src FILE.pth] [--out PATH]``: reads pytorch-fid's state dict
(``pt_inception-2015-12-05-6726825d.pth``, the TF inception-2015-12-05 weights ported to
PyTorch) with ``torch.load(weights_only=True)``, maps names and layouts
(`ganjax.eval.inception.torch_layout`) and writes the Flax variables as an ``.npz``
(`ganjax.eval.inception.save_variables`). Without ``--src`` it downloads the file from
pytorch-fid's release and checks its SHA-256 prefix (the ``6726825d`` in its name). ``--out``
defaults to `ganjax.eval.inception.default_weights_path()`. Needs torch (``pip install
'ganjax[torch]'``); the converted file does not.
"""

from __future__ import annotations

from ganjax import cli  # first: sets up the process before TensorFlow and JAX load

import os  # pylint: disable=g-import-not-at-top,g-bad-import-order
from typing import Any, Mapping

from absl import flags
from flax import traverse_util
import jax
import numpy as np

from ganjax.errors import ConfigError
from ganjax.eval import inception

FLAGS = flags.FLAGS
HASH_PREFIX = "6726825d"


def define_flags() -> None:
  flags.DEFINE_string("src", None, "pytorch-fid state dict (.pth); default: download it.")
  flags.DEFINE_string("out", None, "Output .npz (default: $GANJAX_INCEPTION_WEIGHTS or "
                      "~/.cache/ganjax/fid_inception_v3.npz).")


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ConfigError("converting the Inception weights needs torch: pip install "
                      "'ganjax[torch]'") from None
  return torch


def download(directory: str) -> str:
  """Downloads pytorch-fid's weights into `directory` and checks the SHA-256 prefix."""
  torch = _torch()
  path = os.path.join(directory, os.path.basename(inception.PYTORCH_FID_WEIGHTS_URL))
  if not os.path.exists(path):
    try:
      torch.hub.download_url_to_file(inception.PYTORCH_FID_WEIGHTS_URL, path,
                                     hash_prefix=HASH_PREFIX, progress=False)
    except Exception as e:  # pylint: disable=broad-except  # URLError, hash mismatch, ...
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise ConfigError(f"cannot download {inception.PYTORCH_FID_WEIGHTS_URL} ({first}); "
                        "download it elsewhere and pass --src FILE.pth") from None
  return path


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """A PyTorch state dict file as numpy arrays (``weights_only=True``: no code runs)."""
  torch = _torch()
  if not os.path.exists(path):
    raise ConfigError(f"no such file {path!r}")
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # pickle / zip errors
    raise ConfigError(f"cannot read {path!r} as a PyTorch state dict: {e}") from None
  return {k: v.detach().cpu().numpy() for k, v in state.items()}


def convert_state_dict(state: Mapping[str, np.ndarray]) -> Any:
  """pytorch-fid's ``fid_inception_v3().state_dict()`` -> Flax variables of `FIDInceptionV3`."""
  flat = {}
  for name, value in state.items():
    path, array = inception.torch_layout(name, np.asarray(value))
    if path:
      flat["/".join(path)] = np.asarray(array, np.float32)
  expected = traverse_util.flatten_dict(
      jax.eval_shape(inception.init_variables, jax.random.PRNGKey(0)), sep="/")
  missing = sorted(set(expected) - set(flat))
  if missing:
    raise ConfigError(f"the state dict lacks {len(missing)} Inception entries (e.g. "
                      f"{missing[0]}); is it pytorch-fid's pt_inception-2015-12-05?")
  for key, shape in expected.items():
    if flat[key].shape != shape.shape:
      raise ConfigError(f"{key} has shape {flat[key].shape}, expected {shape.shape}")
  return traverse_util.unflatten_dict(flat, sep="/")


def convert(src: str | None, out: str | None) -> str:
  """Converts `src` (default: the downloaded release file) to `out`; returns `out`."""
  out = inception.default_weights_path() if out is None else out
  if src is None:
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    src = download(directory)
  inception.save_variables(convert_state_dict(read_state_dict(src)), out)
  return out


def main(argv: list[str]) -> None:
  del argv
  out = convert(FLAGS.src, FLAGS.out)
  print(f"wrote {out} (sha256 {inception.variables_digest(inception.load_variables(out))[:16]})")


def run() -> None:
  """The console script."""
  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
