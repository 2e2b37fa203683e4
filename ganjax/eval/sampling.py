"""Sampling a generator: every image is a function of (weights, seed, sample index) alone.

The protocol. Sample ``i`` (``i = 0, 1, ...``, below 2**32) of seed ``s`` is

* latent ``z_i = jax.random.normal(fold_in(PRNGKey(s), i), (z_dim,))`` (float32), or with a
  truncation ``T > 0`` (BigGAN's truncation trick, Brock et al. 2019)
  ``z_i = jax.random.truncated_normal(fold_in(PRNGKey(s), i), -T, T, (z_dim,))``: every
  coordinate a standard normal conditioned on ``[-T, T]``, the distribution of resampling a
  coordinate until it falls inside;
* label ``y_i = i mod K`` for a conditional generator of K classes (any prefix of the samples
  is class-balanced up to one image per class), or one fixed class; none for an unconditional
  generator;
* image ``G(z_i, y_i)`` in inference mode (batch norm with its running statistics), in uint8
  by `ganjax.data.to_uint8`.

The same weights, seed, index and truncation give byte-identical images whatever the batch
size, the device count, the process count and the other indices asked for. Fixing the latents
is not enough for that: convolution kernels round differently for different batch shapes,
sometimes for different positions inside one batch (their blocking over the batch rows), and
XLA's CPU runtime was seen to round the last image of a batch differently with 4 forced host
devices than with 1 (and the batch's other images the same). So:

* the generator always runs on `CHUNK_ROWS` = 32 rows per device: a chunk of `CHUNK_SIZE` =
  31 samples, sample ``i`` at position ``i mod 31``, and a last row that is always padding
  (as are unused positions). Every call of the compiled program evaluates one chunk per
  device (`jax.shard_map`), so every sample goes through the same program with the same
  shapes at the same position however the work is cut into batches, devices and processes;
  latents are computed the same way;
* the generator runs XLA's convolutions (the ``"xla"`` backend of `ganjax.ops.conv`) on every
  platform. The CPU oneDNN extension splits each call's batch into one piece per thread of
  XLA's CPU thread pool, so its images would depend on the thread count, which the forced
  host device count changes too. Images are therefore the same with ``GANJAX_ONEDNN=0`` and
  without. The price, on a 2-core CPU against one oneDNN batch of 250: 0.8x the images per
  second for DCGAN, 0.6x for SNGAN (sampling runs forward passes only, where oneDNN gains
  less than in training).

Checked on a CPU: batch sizes 4 and 16, 1 and 4 forced devices, 1 and 2 processes and subsets
of the indices give the same float images, hence bytes (``tests/test_sampling.py`` with tiny
models; 1 and 4 devices for the shipped CIFAR-10 generators too). Not promised: the same bytes
on another kind of machine (another CPU's vector kernels, a GPU) or with another number of CPU
cores (XLA's kernels split some convolutions by the thread count).

Explicit latents (`Sampler.images`: latents edited by hand) run through the same program; a
latent given with a position (``slots``) equal to ``i mod CHUNK_SIZE`` gives byte for byte the
image of sample ``i`` when it equals ``z_i``. `Sampler.interpolate` draws rows of spherical
interpolations (`slerp`) between the latents of pairs of samples, whose end columns are
therefore exactly those samples' images. A conditional generator's row also goes from the first
sample's class to the second's (each sample's own label, ``i mod K``): the labels along the row
are class weights ``(1 - t) onehot(y_a) + t onehot(y_b)``, a linear path between the two class
embeddings (`ganjax.models.conditioning.class_embedding`), or one class for the whole row when
one is given.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import numpy as np

from ganjax.data import to_uint8
from ganjax.errors import ConfigError
from ganjax.gan import steps
from ganjax.gan.build import GAN
from ganjax.runtime import mesh as mesh_lib

PyTree = Any
Batch = tuple[np.ndarray, np.ndarray | None]

CHUNK_ROWS = 32              # the generator's batch on each device, in every call
CHUNK_SIZE = CHUNK_ROWS - 1  # samples per chunk; its last row is always padding
MAX_INDEX = 2**32            # sample indices are folded into the seed's key as uint32


def check_truncation(truncation: float | None) -> None:
  """A one-line error unless `truncation` is None (no truncation) or a finite T > 0."""
  if truncation is not None and not (np.isfinite(truncation) and truncation > 0):
    raise ConfigError(f"truncation must be a number > 0, got {truncation}")


def check_indices(indices: np.ndarray) -> np.ndarray:
  """`indices` as a 1-D int64 array, with a one-line error for indices outside [0, 2**32)."""
  indices = np.asarray(indices)
  if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
    raise ConfigError(f"sample indices must be a list of integers, got shape {indices.shape}")
  indices = indices.astype(np.int64)
  if indices.size and (indices.min() < 0 or indices.max() >= MAX_INDEX):
    raise ConfigError(f"sample indices must lie in [0, 2**32), got {indices.min()}.."
                      f"{indices.max()}")
  return indices


def latent(seed_key: jax.Array, index: jax.Array, z_dim: int,
           truncation: float | None = None) -> jax.Array:
  """The latent ``[z_dim]`` of sample `index` of the seed whose ``PRNGKey`` is `seed_key` (see
  the module docstring); jit- and vmap-compatible in both."""
  key = jax.random.fold_in(seed_key, index)
  if truncation is None:
    return jax.random.normal(key, (z_dim,), jnp.float32)
  return jax.random.truncated_normal(key, -truncation, truncation, (z_dim,), jnp.float32)


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Spherical interpolation ``[len(t), D]`` between latents z0 and z1 ``[D]`` at fractions t.

  Along the great circle between the directions, with the norm interpolated linearly (the
  points stay where a Gaussian puts its mass, unlike a straight line, which cuts through the
  low-norm interior). Computed in float64; t = 0 and t = 1 return z0 and z1 exactly.
  """
  a, b = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
  t = np.asarray(t, np.float64)[:, None]
  na, nb = np.linalg.norm(a), np.linalg.norm(b)
  ua, ub = a / max(na, 1e-30), b / max(nb, 1e-30)
  omega = np.arccos(np.clip(np.dot(ua, ub), -1.0, 1.0))
  if np.sin(omega) < 1e-6:  # (nearly) parallel or opposite: no single great circle
    direction = (1 - t) * ua + t * ub
  else:
    direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
  out = (direction * ((1 - t) * na + t * nb)).astype(np.float32)
  out[t[:, 0] == 0], out[t[:, 0] == 1] = np.float32(z0), np.float32(z1)
  return out


def pack(slots: np.ndarray, chunk_size: int = CHUNK_SIZE) -> np.ndarray:
  """Item numbers ``[num_chunks, chunk_size]`` (-1: padding): item k at position ``slots[k]``
  of a chunk, items of one position in successive chunks (as few chunks as possible)."""
  slots = np.asarray(slots, np.int64)
  if not slots.size:
    return np.zeros((0, chunk_size), np.int64)
  order = np.argsort(slots, kind="stable")
  ordered = slots[order]
  rank = np.arange(len(ordered)) - np.searchsorted(ordered, ordered, side="left")
  table = np.full((rank.max() + 1, chunk_size), -1, np.int64)
  table[rank, ordered] = order
  return table


@dataclasses.dataclass(frozen=True)
class _Call:
  """One call of the compiled programs: which item fills each of the ``devices * CHUNK_ROWS``
  rows (-1: padding)."""

  items: np.ndarray

  @property
  def used(self) -> np.ndarray:
    return self.items >= 0

  def take(self, values: np.ndarray, fill: Any = 0) -> np.ndarray:
    """``values`` of the items in their rows, `fill` in the padding rows."""
    out = np.full((len(self.items),) + values.shape[1:], fill, values.dtype)
    out[self.used] = values[self.items[self.used]]
    return out


class Sampler:
  """Samples uint8 images from a generator's variables over a device mesh (see the module
  docstring for the protocol).

  `batch_size` is how many images `batches` hands out at a time; it does not change the
  images: the generator always runs on `CHUNK_ROWS` rows per device.

  * `batches` / `sample`: samples by index (``0 .. num - 1`` or any `indices`), optionally of
    one class (`label`) and truncated (`truncation`);
  * `latents` / `labels`: their inputs; `images`: explicit latents; `interpolate`: rows of
    spherical interpolations between pairs of samples.
  """

  def __init__(self, gan: GAN, mesh: Mesh, batch_size: int = 256):
    if batch_size < 1:
      raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    self.batch_size = batch_size
    self.mesh = mesh
    generator = gan.generator
    if hasattr(generator, "conv_backend"):  # XLA's kernels on every mesh: see the docstring
      generator = generator.clone(conv_backend="xla")
    self.generator = generator
    self.z_dim, self.num_classes = generator.z_dim, generator.num_classes
    self.replicated, self.split = mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)
    self._generate = self._compile_generator(steps.make_sample_fn(generator))
    self._latent_fns: dict[float | None, Callable[..., jax.Array]] = {}

  # -- compiled programs (one chunk per device per call) -------------------------------------

  def _shard(self, fn: Callable[..., jax.Array], in_specs: tuple[P, ...]) -> Callable[..., Any]:
    """`fn` jitted, run by every device on its own rows (`in_specs`: P() replicated)."""
    shardings = tuple(self.replicated if spec == P() else self.split for spec in in_specs)
    return jax.jit(jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs,
                                 out_specs=P(mesh_lib.DATA_AXIS), check_vma=False),
                   in_shardings=shardings, out_shardings=self.split)

  def _compile_generator(self, sample: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    conditional = bool(self.num_classes)

    def local(variables: PyTree, z: jax.Array, labels: jax.Array) -> jax.Array:
      return sample(variables, z, labels if conditional else None)

    data = P(mesh_lib.DATA_AXIS)
    return self._shard(local, (P(), data, data))

  def _latent_fn(self, truncation: float | None) -> Callable[..., jax.Array]:
    if truncation not in self._latent_fns:
      one = lambda key, i: latent(key, i, self.z_dim, truncation)
      self._latent_fns[truncation] = self._shard(jax.vmap(one, in_axes=(None, 0)),
                                                 (P(), P(mesh_lib.DATA_AXIS)))
    return self._latent_fns[truncation]

  # -- inputs ---------------------------------------------------------------------------------

  def labels(self, indices: np.ndarray, label: int | None = None) -> np.ndarray | None:
    """The labels of samples `indices`: `label` for all, else ``index mod K``; None for an
    unconditional generator (which takes no `label`)."""
    indices = np.asarray(indices, np.int64)
    if not self.num_classes:
      if label is not None:
        raise ConfigError(f"class {label} asked of an unconditional generator")
      return None
    if label is None:
      return (indices % self.num_classes).astype(np.int32)
    if not 0 <= label < self.num_classes:
      raise ConfigError(f"class {label} is out of range: the generator has {self.num_classes} "
                        f"classes (0..{self.num_classes - 1})")
    return np.full(len(indices), label, np.int32)

  def _calls(self, slots: np.ndarray) -> list[_Call]:
    """The calls evaluating items at `slots`, one chunk per device in each."""
    table = pack(slots, CHUNK_SIZE)
    table = np.concatenate([table, np.full((len(table), CHUNK_ROWS - CHUNK_SIZE), -1)], axis=1)
    devices = self.mesh.devices.size
    table = np.concatenate([table, np.full((-len(table) % devices, CHUNK_ROWS), -1)])
    return [_Call(rows.reshape(-1)) for rows in np.split(table, len(table) // devices)]

  def _put(self, value: np.ndarray) -> jax.Array:
    return mesh_lib.global_array(value, self.split)

  def _device_latents(self, call: _Call, indices: np.ndarray, seed: int,
                      truncation: float | None) -> jax.Array:
    rows = call.take(indices.astype(np.uint32))
    key = mesh_lib.global_array(np.asarray(jax.random.PRNGKey(seed)), self.replicated)
    return self._latent_fn(truncation)(key, self._put(rows))

  # -- sampling -------------------------------------------------------------------------------

  def latents(self, indices: Sequence[int] | np.ndarray, *, seed: int = 0,
              truncation: float | None = None) -> np.ndarray:
    """The latents ``[n, z_dim]`` (float32) of samples `indices` of `seed`."""
    check_truncation(truncation)
    indices = check_indices(indices)
    out = np.zeros((len(indices), self.z_dim), np.float32)
    if not len(indices):
      return out
    calls = self._calls(indices % CHUNK_SIZE)
    results = [self._device_latents(c, indices, seed, truncation) for c in calls]
    for call, z in zip(calls, results):
      out[call.items[call.used]] = mesh_lib.host_array(z)[call.used]
    return out

  def _run(self, variables: PyTree, slots: np.ndarray, labels: np.ndarray | None,
           latents_of: Callable[[_Call], jax.Array]) -> np.ndarray:
    """uint8 images of items at positions `slots`; `latents_of(call)` gives a call's latents."""
    calls = self._calls(slots)
    zeros = np.zeros(len(slots), np.int32)
    results = [self._generate(variables, latents_of(c),
                              self._put(c.take(zeros if labels is None else labels)))
               for c in calls]  # all dispatched before the first is read
    out = None
    for call, images in zip(calls, results):
      images = to_uint8(mesh_lib.host_array(images)[call.used])
      if out is None:
        out = np.zeros((len(slots),) + images.shape[1:], images.dtype)
      out[call.items[call.used]] = images
    return out

  def sample(self, variables: PyTree, indices: Sequence[int] | np.ndarray, *, seed: int = 0,
             label: int | None = None, truncation: float | None = None) -> Batch:
    """Samples `indices` of `seed` at once: (uint8 images [n, H, W, C], int32 labels [n] or
    None)."""
    check_truncation(truncation)
    indices = check_indices(indices)
    if not len(indices):
      raise ConfigError("no sample indices to sample")
    labels = self.labels(indices, label)
    images = self._run(variables, indices % CHUNK_SIZE, labels,
                       lambda c: self._device_latents(c, indices, seed, truncation))
    return images, labels

  def batches(self, variables: PyTree, num: int | None = None, *, seed: int = 0,
              label: int | None = None, indices: Sequence[int] | np.ndarray | None = None,
              truncation: float | None = None) -> Iterator[Batch]:
    """Samples ``0 .. num - 1`` (or `indices`, in their order) of `seed`, `batch_size` at a
    time: (uint8 images [n, H, W, C], int32 labels [n] or None).

    Conditional generators use `label` for every image, or labels cycling 0, 1, ..., K-1 by
    sample index when `label` is None.
    """
    if (num is None) == (indices is None):
      raise ConfigError("give exactly one of num and indices")
    if indices is None:
      if num < 0:
        raise ConfigError(f"the number of samples must be at least 0, got {num}")
      indices = np.arange(num, dtype=np.int64)
    indices = check_indices(indices)
    check_truncation(truncation)
    self.labels(indices[:1], label)  # a bad label fails before any work
    for start in range(0, len(indices), self.batch_size):
      yield self.sample(variables, indices[start:start + self.batch_size], seed=seed,
                        label=label, truncation=truncation)

  def images(self, variables: PyTree, latents: np.ndarray, labels: np.ndarray | None = None,
             *, slots: np.ndarray | None = None) -> np.ndarray:
    """uint8 images [n, H, W, C] of explicit latents ``[n, z_dim]`` (and int32 labels [n] for a
    conditional generator). ``slots[k]`` is latent k's position in its chunk (default
    ``k mod CHUNK_SIZE``): a latent equal to sample i's, at position ``i mod CHUNK_SIZE``,
    gives sample i's image byte for byte."""
    latents = np.asarray(latents, np.float32)
    if latents.ndim != 2 or latents.shape[1] != self.z_dim or not len(latents):
      raise ConfigError(f"latents must have shape [n, {self.z_dim}], got {latents.shape}")
    labels = self._check_labels(labels, len(latents))
    slots = np.arange(len(latents)) if slots is None else np.asarray(slots, np.int64)
    if slots.shape != (len(latents),):
      raise ConfigError(f"slots must have shape [{len(latents)}], got {slots.shape}")
    return self._run(variables, slots % CHUNK_SIZE, labels,
                     lambda c: self._put(c.take(latents)))

  def _check_labels(self, labels: np.ndarray | None, n: int) -> np.ndarray | None:
    if not self.num_classes:
      if labels is not None:
        raise ConfigError("labels given to an unconditional generator")
      return None
    if labels is None:
      raise ConfigError(f"a conditional generator ({self.num_classes} classes) needs labels")
    labels = np.asarray(labels)
    if labels.shape == (n, self.num_classes) and labels.dtype.kind == "f":
      if not np.isfinite(labels).all():
        raise ConfigError("class weights must be finite")
      return labels.astype(np.float32)
    if labels.shape != (n,) or labels.min() < 0 or labels.max() >= self.num_classes:
      raise ConfigError(f"labels must be {n} classes in 0..{self.num_classes - 1} (or class "
                        f"weights [{n}, {self.num_classes}])")
    return labels.astype(np.int32)

  def interpolate(self, variables: PyTree, endpoints: np.ndarray, steps: int, *, seed: int = 0,
                  label: int | None = None, truncation: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Row r: `steps` images along the `slerp` from sample ``endpoints[r, 0]``'s latent to
    sample ``endpoints[r, 1]``'s (of `seed`), both ends included. A conditional generator goes
    from the first sample's class to the second's (class weights linear in t), or keeps class
    `label` along every row.

    Returns uint8 images ``[R, steps, H, W, C]``, latents ``[R, steps, z_dim]`` and each row's
    int32 (start, end) classes ``[R, 2]`` (or None). Column 0 and column ``steps - 1`` are byte
    for byte the images of the endpoint samples (of class `label` when given).
    """
    endpoints = np.asarray(endpoints)
    if endpoints.ndim != 2 or endpoints.shape[1:] != (2,) or not len(endpoints):
      raise ConfigError(f"interpolation endpoints must be pairs of sample indices [R, 2], got "
                        f"shape {endpoints.shape}")
    if steps < 2:
      raise ConfigError(f"an interpolation needs at least 2 steps (its ends), got {steps}")
    rows = len(endpoints)
    ends = self.latents(endpoints.reshape(-1), seed=seed, truncation=truncation)
    ends = ends.reshape(rows, 2, self.z_dim)
    t = np.linspace(0.0, 1.0, steps)
    latents = np.stack([slerp(a, b, t) for a, b in ends])
    classes = self.labels(endpoints.reshape(-1), label)
    weights = None
    if classes is not None:
      classes = classes.reshape(rows, 2)
      onehot = np.eye(self.num_classes, dtype=np.float32)[classes]  # [R, 2, K]
      t32 = t.astype(np.float32)[None, :, None]
      weights = (1 - t32) * onehot[:, :1] + t32 * onehot[:, 1:]  # [R, steps, K]; ends exact
      weights = weights.reshape(rows * steps, self.num_classes)
    slots = np.arange(rows * steps).reshape(rows, steps)
    slots[:, 0], slots[:, -1] = endpoints[:, 0] % CHUNK_SIZE, endpoints[:, 1] % CHUNK_SIZE
    images = self.images(variables, latents.reshape(rows * steps, self.z_dim), weights,
                         slots=slots.reshape(-1))
    return images.reshape((rows, steps) + images.shape[1:]), latents, classes
