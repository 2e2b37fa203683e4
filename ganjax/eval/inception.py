"""The FID Inception v3 network in Flax, and the feature extractor built on it.

A port of pytorch-fid's ``InceptionV3`` with ``use_fid_inception=True``
(https://github.com/mseitzer/pytorch-fid, ``pytorch_fid/inception.py``): torchvision's
Inception v3 layout with the TensorFlow inception-2015-12-05 weights and their quirks:

* the average pools of the A, C and first E blocks do not count the zero padding
  (``count_include_pad=False``, as TensorFlow pools);
* the last E block (``Mixed_7c``) pools its fourth branch with a *max* pool;
* every convolution is ``conv (no bias) -> batch norm (eps 1e-3, running statistics) -> relu``;
* the input is resized to 299x299 as ``F.interpolate(x, (299, 299), mode='bilinear',
  align_corners=False)`` does (no antialiasing) and mapped from [0, 1] to [-1, 1] by ``2x - 1``,
  where x = uint8 / 255.

Outputs: ``pool``, the 2048-d global average pool of ``Mixed_7c`` (FID's pool3 features), and
``logits_unbiased = pool @ fc.weight.T``, the 1008 class logits without the fc bias (the
original Inception Score protocol of Salimans et al. 2016, torch-fidelity's
``logits_unbiased``).

`load(path=None)` returns the extractor: uint8 ``[N, H, W, 3]`` numpy images in, a dict of
float32 numpy arrays out. It compiles once per batch shape and splits each batch over a 1-D mesh
of all devices. Weights come from `ganjax.eval.convert_inception` (pytorch-fid's state dict
converted to an ``.npz`` of flattened Flax variables, see `save_variables`).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from ganjax.runtime import files, mesh as mesh_lib
from ganjax.errors import ConfigError
from ganjax.ops import conv

PyTree = Any
INPUT_SIZE = 299
POOL_DIM = 2048
NUM_LOGITS = 1008
BN_EPSILON = 1e-3
PER_DEVICE_BATCH = 50
WEIGHTS_ENV = "GANJAX_INCEPTION_WEIGHTS"
WEIGHTS_FILE = "fid_inception_v3.npz"
PYTORCH_FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/"
                           "fid_weights/pt_inception-2015-12-05-6726825d.pth")


# -- input: torch's bilinear resize ----------------------------------------------------------


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """The [out, in] matrix of 1-D linear interpolation as torch's ``align_corners=False``.

  Output pixel i samples source coordinate ``s = max((i + 0.5) * in / out - 0.5, 0)`` (torch's
  ``area_pixel_compute_source_index``) between ``i0 = floor(s)`` and ``min(i0 + 1, in - 1)``
  with weights ``1 - (s - i0)`` and ``s - i0``, in float32 as torch's CPU kernel computes them.
  No antialiasing, also when shrinking.
  """
  scale = np.float64(np.float32(in_size) / np.float32(out_size))
  # torch evaluates scale * (i + 0.5) - 0.5 in float32 as one fused multiply-add: one rounding.
  src = ((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
  src = np.maximum(src, np.float32(0.0))
  i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  lam = src - i0.astype(np.float32)
  m = np.zeros((out_size, in_size), np.float32)
  rows = np.arange(out_size)
  np.add.at(m, (rows, i0), np.float32(1.0) - lam)
  np.add.at(m, (rows, i1), lam)
  return m


def preprocess(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """uint8 [N, H, W, 3] -> float32 [N, size, size, 3] in [-1, 1], as pytorch-fid feeds it.

  ``x = uint8 / 255`` (torchvision's ``ToTensor``), bilinear resize (`bilinear_matrix` along H,
  then W), then ``2x - 1``.
  """
  _, h, w, _ = images.shape
  x = images.astype(jnp.float32) / jnp.float32(255.0)
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum("oh,nhwc->nowc", jnp.asarray(bilinear_matrix(h, size)), x, precision=hi)
  x = jnp.einsum("pw,nowc->nopc", jnp.asarray(bilinear_matrix(w, size)), x, precision=hi)
  return 2.0 * x - 1.0


# -- the network ------------------------------------------------------------------------------


class BasicConv(nn.Module):
  """torchvision's ``BasicConv2d``: conv without bias, batch norm (running stats), relu."""

  features: int
  kernel: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel, self.strides, padding=((ph, ph), (pw, pw)),
                use_bias=False, conv_general_dilated=conv.conv_general_dilated, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  """3x3 stride-1 average pool, padding 1, not counting the padding (TensorFlow's pool)."""
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_same(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")


class InceptionA(nn.Module):
  """``FIDInceptionA``: 1x1, 5x5, double 3x3 and (avg pool, 1x1) branches."""

  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, (1, 1), name="branch1x1")(x)
    b5 = BasicConv(48, (1, 1), name="branch5x5_1")(x)
    b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """torchvision's ``InceptionB`` (``Mixed_6a``): grid reduction 35 -> 17."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), (2, 2), name="branch3x3")(x)
    bd = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, (3, 3), (2, 2), name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """``FIDInceptionC``: factorized 7x7 branches and an (avg pool, 1x1) branch."""

  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = BasicConv(192, (1, 1), name="branch1x1")(x)
    b7 = BasicConv(c7, (1, 1), name="branch7x7_1")(x)
    b7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c7, (1, 1), name="branch7x7dbl_1")(x)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """torchvision's ``InceptionD`` (``Mixed_7a``): grid reduction 17 -> 8."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, (1, 1), name="branch3x3_1")(x)
    b3 = BasicConv(320, (3, 3), (2, 2), name="branch3x3_2")(b3)
    b7 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, (3, 3), (2, 2), name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """``FIDInceptionE_1`` (avg pool without padding) or ``FIDInceptionE_2`` (max pool)."""

  pool: Callable[[jax.Array], jax.Array]

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, (1, 1), name="branch1x1")(x)
    b3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = BasicConv(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)],
                         -1)
    bp = BasicConv(192, (1, 1), name="branch_pool")(self.pool(x))
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """pytorch-fid's FID Inception v3 up to the final average pool, plus the unbiased logits.

  Input: float [N, H, W, 3] in [-1, 1] (already resized; see `preprocess`). Returns
  ``{'pool': [N, 2048], 'logits_unbiased': [N, 1008]}``. Submodule names are torchvision's,
  so parameter paths mirror the PyTorch state dict.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = BasicConv(32, (3, 3), (2, 2), name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(_avg_pool_3x3, name="Mixed_7b")(x)
    x = InceptionE(_max_pool_3x3_same, name="Mixed_7c")(x)
    pool = jnp.mean(x, axis=(1, 2))
    fc = self.param("fc_kernel", nn.initializers.lecun_normal(), (POOL_DIM, NUM_LOGITS))
    logits = jnp.dot(pool, fc, precision=jax.lax.Precision.HIGHEST)
    return {"pool": pool, "logits_unbiased": logits}


def init_variables(rng: jax.Array) -> PyTree:
  """Freshly initialized variables (``params`` and ``batch_stats``) of `FIDInceptionV3`."""
  return FIDInceptionV3().init(rng, jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))


def make_features_fn(size: int = INPUT_SIZE, conv_backend: str = "auto"
                     ) -> Callable[[PyTree, jax.Array], dict[str, jax.Array]]:
  """The pure ``features(variables, uint8 images) -> {'pool', 'logits_unbiased'}``, its
  convolutions computed by `conv_backend` (`ganjax.ops.conv.BACKENDS`)."""
  model = FIDInceptionV3()

  def features(variables: PyTree, images: jax.Array) -> dict[str, jax.Array]:
    with conv.backend_scope(conv_backend):
      return model.apply(variables, preprocess(images, size))

  return features


# -- weights files ----------------------------------------------------------------------------


def default_weights_path() -> str:
  """``$GANJAX_INCEPTION_WEIGHTS``, else ``$XDG_CACHE_HOME/ganjax/fid_inception_v3.npz``."""
  if os.environ.get(WEIGHTS_ENV):
    return os.path.expanduser(os.environ[WEIGHTS_ENV])
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(cache, "ganjax", WEIGHTS_FILE)


def save_variables(variables: PyTree, path: str) -> None:
  """Writes Flax variables as an ``.npz`` of float32 arrays keyed ``collection/module/.../name``."""
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
  files.write_npz(path, **{k: np.asarray(v, np.float32) for k, v in flat.items()})


def _missing_weights_message(path: str) -> str:
  return (f"no FID Inception weights at {path}; convert pytorch-fid's with `python -m "
          f"ganjax.eval.convert_inception --out {path}` (downloads them; offline add --src "
          f"pt_inception-2015-12-05-6726825d.pth) or set ${WEIGHTS_ENV}")


def load_variables(path: str | None = None) -> PyTree:
  """Reads variables written by `save_variables`, checking them against the architecture."""
  path = default_weights_path() if path is None else os.path.expanduser(path)
  if not os.path.exists(path):
    raise ConfigError(_missing_weights_message(path))
  try:
    with np.load(path) as f:
      flat = {k: f[k] for k in f.files}
  except (OSError, ValueError) as e:
    raise ConfigError(f"cannot read FID Inception weights {path}: {e}") from None
  expected = traverse_util.flatten_dict(
      jax.eval_shape(init_variables, jax.random.PRNGKey(0)), sep="/")
  missing, extra = sorted(set(expected) - set(flat)), sorted(set(flat) - set(expected))
  wrong = sorted(k for k in set(expected) & set(flat) if flat[k].shape != expected[k].shape)
  if missing or extra or wrong:
    detail = (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}" if extra else
              f"shape of {wrong[0]} is {flat[wrong[0]].shape}, expected {expected[wrong[0]].shape}")
    raise ConfigError(f"{path} is not a FID Inception weights file: {detail}")
  return traverse_util.unflatten_dict(flat, sep="/")


def variables_digest(variables: PyTree) -> str:
  """SHA-256 (hex) of the variables' paths, shapes and float32 values.

  It names the weights in statistics caches and protocol strings; it depends on the values
  only, not on how the file was written.
  """
  h = hashlib.sha256()
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
  for key in sorted(flat):
    value = np.ascontiguousarray(flat[key], np.float32)
    h.update(f"{key}:{value.shape};".encode())
    h.update(value.astype("<f4").tobytes())
  return h.hexdigest()


# -- the extractor ----------------------------------------------------------------------------


class InceptionExtractor:
  """uint8 images [N, H, W, 3] -> ``{'pool': [N, 2048], 'logits_unbiased': [N, 1008]}``.

  Images are cut into batches of at most `batch_size` (a multiple of the device count); a short
  batch is padded to that size, so each input size compiles once. Each batch is split over the
  ``'data'`` axis of the mesh, the variables are replicated. On a mesh that spans several
  processes every process passes the same images, computes its devices' part and receives
  the gathered features of all of them.
  """

  def __init__(self, variables: PyTree, *, mesh: Mesh | None = None, batch_size: int = 50,
               digest: str | None = None, _size: int = INPUT_SIZE):
    self.mesh = mesh_lib.make_mesh() if mesh is None else mesh
    self.num_devices = self.mesh.devices.size
    self.batch_size = _round_up(max(batch_size, 1), self.num_devices)
    self.digest = variables_digest(variables) if digest is None else digest
    self.input_size = _size
    replicated = NamedSharding(self.mesh, P())
    self.split = NamedSharding(self.mesh, P("data"))
    self.variables = jax.device_put(variables, replicated)
    features = make_features_fn(_size, conv.backend_for(self.mesh))
    self._features = jax.jit(features, in_shardings=(replicated, self.split),
                             out_shardings=self.split)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or not len(images):
      raise ConfigError(f"Inception features need uint8 images [N >= 1, H, W, 3], got "
                        f"{images.dtype} {images.shape}")
    n = len(images)
    chunk = min(self.batch_size, _round_up(n, self.num_devices))
    outputs: dict[str, list[np.ndarray]] = {"pool": [], "logits_unbiased": []}
    for start in range(0, n, chunk):
      batch = images[start:start + chunk]
      take = len(batch)
      if take < chunk:
        batch = np.concatenate([batch, np.zeros((chunk - take,) + batch.shape[1:], np.uint8)])
      out = self._features(self.variables, mesh_lib.global_array(batch, self.split))
      for k in outputs:
        outputs[k].append(mesh_lib.host_array(out[k])[:take].astype(np.float32))
    return {k: np.concatenate(v) for k, v in outputs.items()}


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


# Private test hook: the end-to-end tests of the command-line tools run the same layers on a
# 75x75 input (~16x cheaper than 299x299). The size then enters the digest (so statistics
# caches never mix) and the protocol string. Never set it for numbers you report.
_TEST_INPUT_SIZE_ENV = "GANJAX_INCEPTION_INPUT_SIZE_FOR_TESTS"


def load(path: str | None = None, *, mesh: Mesh | None = None, batch_size: int | None = None
         ) -> InceptionExtractor:
  """The feature extractor with the weights at `path` (default: `default_weights_path()`).

  `batch_size` defaults to `PER_DEVICE_BATCH` images per device of the mesh (pytorch-fid's
  default batch; a 299x299 batch of 50 takes a few GB on the CPU).
  """
  path = default_weights_path() if path is None else os.path.expanduser(path)
  mesh = mesh_lib.make_mesh() if mesh is None else mesh
  batch_size = PER_DEVICE_BATCH * mesh.devices.size if batch_size is None else batch_size
  variables = load_variables(path)
  size = int(os.environ.get(_TEST_INPUT_SIZE_ENV) or INPUT_SIZE)
  digest = variables_digest(variables)
  if size != INPUT_SIZE:
    digest = hashlib.sha256(f"{digest}:input{size}".encode()).hexdigest()
  return InceptionExtractor(variables, mesh=mesh, batch_size=batch_size, digest=digest,
                            _size=size)


def torch_layout(name: str, value: np.ndarray) -> tuple[Sequence[str], np.ndarray]:
  """Maps one pytorch-fid state-dict entry to its Flax variable path and layout.

  ``X.conv.weight`` [O, I, kh, kw] -> ``params/X/conv/kernel`` [kh, kw, I, O];
  ``X.bn.{weight, bias}`` -> ``params/X/bn/{scale, bias}``; ``X.bn.running_{mean, var}`` ->
  ``batch_stats/X/bn/{mean, var}``; ``fc.weight`` [1008, 2048] -> ``params/fc_kernel``
  [2048, 1008]. Returns ``((), value)`` for entries the port does not use (``fc.bias``,
  ``num_batches_tracked``, the auxiliary classifier).
  """
  parts = name.split(".")
  if name == "fc.weight":
    return ("params", "fc_kernel"), value.T
  if parts[0] == "AuxLogits" or parts[-1] == "num_batches_tracked" or name == "fc.bias":
    return (), value
  *modules, layer, leaf = parts
  if layer == "conv" and leaf == "weight":
    return ("params", *modules, "conv", "kernel"), np.transpose(value, (2, 3, 1, 0))
  bn = {"weight": ("params", "scale"), "bias": ("params", "bias"),
        "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}
  if layer == "bn" and leaf in bn:
    collection, new_leaf = bn[leaf]
    return (collection, *modules, "bn", new_leaf), value
  raise ConfigError(f"unexpected entry {name!r} in the Inception state dict")
