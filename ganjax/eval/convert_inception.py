"""Converts pytorch-fid's Inception weights to Flax: ``python -m ganjax.eval.convert_inception``.

``[--src FILE.pth] [--out PATH]``: reads pytorch-fid's state dict
(``pt_inception-2015-12-05-6726825d.pth``, the TF inception-2015-12-05 weights ported to
PyTorch) without torch and without running any pickled code (`ganjax.eval.pth_reader`: only
tensor storages and their shapes; a file holding anything else is refused), maps names and
layouts (`ganjax.eval.inception.torch_layout`) and writes the Flax variables as an ``.npz``
(`ganjax.eval.inception.save_variables`). Without ``--src`` it downloads the file from
pytorch-fid's release and checks its SHA-256 prefix (the ``6726825d`` in its name). ``--out``
defaults to `ganjax.eval.inception.default_weights_path()`. `read_state_dict_with_torch` is
the PyTorch path, kept as the reference the tests compare with.
"""

from __future__ import annotations

from ganjax import cli  # first: sets up the process before TensorFlow and JAX load

import hashlib  # pylint: disable=g-import-not-at-top,g-bad-import-order
import os
import shutil
import urllib.request
from typing import Any, Mapping

from absl import flags
from flax import traverse_util
import jax
import numpy as np

from ganjax.errors import ConfigError
from ganjax.eval import inception, pth_reader

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
  path = os.path.join(directory, os.path.basename(inception.PYTORCH_FID_WEIGHTS_URL))
  if os.path.exists(path):
    return path
  tmp = path + ".download"
  try:
    with urllib.request.urlopen(inception.PYTORCH_FID_WEIGHTS_URL, timeout=60) as response, \
        open(tmp, "wb") as f:
      shutil.copyfileobj(response, f)
  except OSError as e:  # URLError, timeouts, a full disk
    raise ConfigError(f"cannot download {inception.PYTORCH_FID_WEIGHTS_URL} ({e}); "
                      "download it elsewhere and pass --src FILE.pth") from None
  with open(tmp, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  if not digest.startswith(HASH_PREFIX):
    os.remove(tmp)
    raise ConfigError(f"the download of {inception.PYTORCH_FID_WEIGHTS_URL} has SHA-256 "
                      f"{digest[:16]}..., not {HASH_PREFIX}...; pass --src FILE.pth")
  os.replace(tmp, path)
  return path


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """pytorch-fid's state dict file as numpy arrays, without torch (`pth_reader`)."""
  if not os.path.exists(path):
    raise ConfigError(f"no such file {path!r}")
  return pth_reader.read_state_dict(path)


def read_state_dict_with_torch(path: str) -> dict[str, np.ndarray]:
  """The same with ``torch.load(weights_only=True)`` (the reference; needs torch)."""
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
