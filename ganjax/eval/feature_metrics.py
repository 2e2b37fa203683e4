"""KID, precision / recall, density / coverage from Inception pool features, in JAX.

All metrics take two float feature arrays, ``real`` [N, D] and ``fake`` [M, D] (e.g. the 2048-d
pool features of `ganjax.eval.inception`), and return Python floats.

Kernel Inception Distance (Binkowski et al., "Demystifying MMD GANs", ICLR 2018), exactly as
torch-fidelity's ``kid_features_to_metric`` (``metric_kid.py``: ``mmd2`` and ``kernel_poly``):

* kernel ``k(x, y) = (gamma x.y + coef0)^degree``, ``gamma = 1 / D`` by default, ``degree = 3``,
  ``coef0 = 1``;
* unbiased MMD^2 of two subsets of equal size m::

    MMD^2 = (sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)) / (m (m - 1))
            - 2 sum_{i,j} k(x_i, y_j) / m^2

* ``num_subsets`` subsets drawn by ``np.random.RandomState(seed)``: per subset first
  ``rng.choice(N, m, replace=False)`` for ``real`` and then the same for ``fake`` (torch-fidelity's
  ``features_1`` and ``features_2``); the result is the mean and the population standard
  deviation (``np.std``, what torch-fidelity reports) of the subset values.

``m = min(subset_size, N, M)``: the subset size is clipped to the set sizes as in
stylegan2-ada-pytorch's ``kid50k`` (torch-fidelity raises instead; with enough samples both agree).
torch-fidelity's ``calculate_metrics`` passes ``input1`` (usually the generator) as ``features_1``:
to reproduce its number call ``kid(fake, real, seed=2020)`` (2020 is its default seed); MMD^2 is
symmetric, only the draw order differs. The kernels are computed in float64 (torch-fidelity
computes in the features' dtype, so on float32 features it carries float32 rounding; on float64
features the two agree to about 1e-12). `mmd2_unbiased` is the same estimator on the full sets
(any sizes, blockwise, never forming the N x M kernel matrix).

Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019), as stylegan2-ada-pytorch's
``pr50k3`` (``metrics/precision_recall.py``) with ``k = 3``: ``r_k(x)`` is the distance of ``x`` to
its k-th nearest neighbour in its own set (the (k+1)-th smallest distance counting the point
itself at distance 0, torch's ``kthvalue(k + 1)``);

  precision = mean_j [exists i: ||fake_j - real_i|| <= r_k(real_i)]
  recall    = mean_i [exists j: ||real_i - fake_j|| <= r_k(fake_j)]

Density and coverage (Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative
Models", ICML 2020), exactly as ``prdc.compute_prdc`` (radii from ``get_kth_value(k + 1)``,
strict comparisons)::

  density  = 1 / (k M) sum_j sum_i [||fake_j - real_i|| < r_k(real_i)]
  coverage = mean_i [min_j ||real_i - fake_j|| < r_k(real_i)]

`prdc` returns precision, recall, density and coverage exactly as ``prdc.compute_prdc`` (its
precision and recall use ``<`` where stylegan2-ada uses ``<=``: they differ only on exact ties,
e.g. duplicated samples).

Distances have the form scikit-learn's ``euclidean_distances`` (which prdc calls) uses::

  d^2(x, y) = (-2 x.y + |x|^2) + |y|^2      accumulated in float64,

rounded to float32 for float32 features (kept in float64 for others, cast to float64 first),
clipped at 0, then ``sqrt`` in that dtype; the distance of a point to itself is 0. So the
distances, and every comparison made with them, agree with prdc's up to float64 summation
order. ``fast=True`` computes the same form in float32 throughout (for accelerators without fast
float64); near-ties may then decide differently. stylegan2-ada computes ``torch.cdist`` of
float16 features and rounds the radii to float16; this module does not reproduce that rounding.

Distances are computed blockwise: row blocks of ``block_rows`` points against column blocks of
``block_cols`` points (a jitted ``lax.scan``), keeping only what the metrics need (k-NN radii, row
minima, hit flags, per-column counts), so 50k x 50k distances never exist at once. The row blocks
are sharded over the ``'data'`` axis of a `jax.sharding.Mesh` (default: all local devices in a
1-D mesh); columns are replicated.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

from absl import logging
import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from ganjax.errors import ConfigError
from ganjax.runtime.progress import Progress

DEFAULT_BLOCK_ROWS = 2048
DEFAULT_BLOCK_COLS = 4096
DATA_AXIS = "data"
TORCH_FIDELITY_SEED = 2020

Subsets = Sequence[tuple[np.ndarray, np.ndarray]]


# ----------------------------------------------------------------------------------------------
# Input checks

def _features(x: np.ndarray, name: str) -> np.ndarray:
  """`x` as a finite floating [N, D] numpy array (float32 kept, any other dtype -> float64)."""
  x = np.asarray(x)
  if x.ndim != 2:
    raise ConfigError(f"{name} features must be a 2-D array [N, D], got shape {x.shape}")
  if x.dtype != np.float32:
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
      raise ConfigError(f"{name} features must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise ConfigError(f"{name} features are empty (shape {x.shape})")
  if not np.isfinite(x).all():
    raise ConfigError(f"{name} features contain NaN or infinite values")
  return x


def _pair(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  real, fake = _features(real, "real"), _features(fake, "fake")
  if real.shape[1] != fake.shape[1]:
    raise ConfigError(f"real and fake features differ in dimension: {real.shape[1]} vs "
                      f"{fake.shape[1]}")
  return real, fake


def _positive_int(value: int, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ConfigError(f"{name} must be a positive integer, got {value!r}")
  return int(value)


# ----------------------------------------------------------------------------------------------
# Kernel Inception Distance

def kid_subsets(num_real: int, num_fake: int, num_subsets: int = 100, subset_size: int = 1000,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
  """The (real_idx, fake_idx) subsets torch-fidelity's KID draws with ``rng_seed=seed``.

  ``m = min(subset_size, num_real, num_fake)``; per subset ``rng.choice(num_real, m,
  replace=False)`` then ``rng.choice(num_fake, m, replace=False)`` from one
  ``np.random.RandomState(seed)``.
  """
  num_subsets = _positive_int(num_subsets, "KID num_subsets")
  m = min(_positive_int(subset_size, "KID subset_size"), num_real, num_fake)
  if m < subset_size:
    logging.warning("KID: subsets of %d, not %d (sets of %d and %d)", m, subset_size, num_real,
                    num_fake)
  if m < 2:
    raise ConfigError(f"KID needs subsets of at least 2 samples, got {m} (real {num_real}, "
                      f"fake {num_fake}, subset_size {subset_size})")
  rng = np.random.RandomState(seed)
  subsets = []
  for _ in range(num_subsets):
    real_idx = rng.choice(num_real, m, replace=False)
    fake_idx = rng.choice(num_fake, m, replace=False)
    subsets.append((real_idx, fake_idx))
  return subsets


def _poly_kernel(x: jax.Array, y: jax.Array, gamma: float, coef0: float,
                 degree: int) -> jax.Array:
  """``(gamma x.y + coef0)^degree`` in the operation order of torch-fidelity's ``kernel_poly``."""
  return (jnp.matmul(x, y.T, precision=lax.Precision.HIGHEST) * gamma + coef0) ** degree


@functools.partial(jax.jit, static_argnames=("degree",))
def _subset_mmd2(x: jax.Array, y: jax.Array, gamma: jax.Array, coef0: jax.Array,
                 degree: int) -> jax.Array:
  """torch-fidelity's ``mmd2(K_XX, K_XY, K_YY)`` (unbiased) of subsets `x` and `y` [m, D]."""
  m = x.shape[0]
  k_xx = _poly_kernel(x, x, gamma, coef0, degree)
  k_yy = _poly_kernel(y, y, gamma, coef0, degree)
  k_xy = _poly_kernel(x, y, gamma, coef0, degree)
  kt_xx_sum = jnp.sum(k_xx.sum(axis=1) - jnp.diagonal(k_xx))
  kt_yy_sum = jnp.sum(k_yy.sum(axis=1) - jnp.diagonal(k_yy))
  k_xy_sum = jnp.sum(k_xy.sum(axis=0))
  return (kt_xx_sum + kt_yy_sum) / (m * (m - 1)) - 2 * k_xy_sum / (m * m)


def _kernel_args(dim: int, degree: int, gamma: float | None,
                 coef0: float) -> tuple[int, float, float]:
  if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
    raise ConfigError(f"KID kernel degree must be a positive integer, got {degree!r}")
  gamma = 1.0 / dim if gamma is None else float(gamma)
  return int(degree), gamma, float(coef0)


def kid_subset_values(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100,
                      subset_size: int = 1000, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1, seed: int = 0, subsets: Subsets | None = None,
                      log: Callable[[str], None] | None = None) -> np.ndarray:
  """The unbiased MMD^2 of every KID subset (float64 [num_subsets]); see `kid`. `log`, when
  given, receives progress lines (subsets done)."""
  real, fake = _pair(real, fake)
  degree, gamma, coef0 = _kernel_args(real.shape[1], degree, gamma, coef0)
  if subsets is None:
    subsets = kid_subsets(len(real), len(fake), num_subsets, subset_size, seed)
  if len(subsets) == 0:
    raise ConfigError("KID needs at least one subset")
  checked = []
  for real_idx, fake_idx in subsets:
    real_idx, fake_idx = np.asarray(real_idx), np.asarray(fake_idx)
    if (real_idx.ndim != 1 or real_idx.shape != fake_idx.shape or len(real_idx) < 2
        or not np.issubdtype(real_idx.dtype, np.integer)
        or not np.issubdtype(fake_idx.dtype, np.integer)):
      raise ConfigError("KID subsets must be pairs of 1-D integer index arrays of one length >= 2")
    if (real_idx.min() < 0 or real_idx.max() >= len(real) or fake_idx.min() < 0
        or fake_idx.max() >= len(fake)):
      raise ConfigError(f"KID subset indices out of range (real {len(real)}, fake {len(fake)})")
    checked.append((real_idx, fake_idx))
  progress = None if log is None else Progress(
      f"KID {len(checked)} subsets of {len(checked[0][0])}", len(checked), unit="subsets",
      log=log)
  values = np.zeros(len(checked), np.float64)
  with jax.enable_x64(True):
    gamma_d, coef0_d = jnp.float64(gamma), jnp.float64(coef0)
    for i, (ri, fi) in enumerate(checked):
      values[i] = float(_subset_mmd2(jnp.asarray(real[ri], jnp.float64),
                                     jnp.asarray(fake[fi], jnp.float64), gamma_d, coef0_d, degree))
      if progress is not None:
        progress.update(1)
  return values


def kid(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100, subset_size: int = 1000,
        degree: int = 3, gamma: float | None = None, coef0: float = 1, seed: int = 0,
        subsets: Subsets | None = None,
        log: Callable[[str], None] | None = None) -> tuple[float, float]:
  """Kernel Inception Distance: (mean, std) of the unbiased MMD^2 over random subsets.

  As torch-fidelity's ``kid_features_to_metric(real, fake, rng_seed=seed)`` (see the module
  docstring). `subsets`, a list of (real_idx, fake_idx) index arrays of equal length, replaces
  the random draw (`kid_subsets` gives torch-fidelity's). The std is ``np.std`` (ddof 0).
  `log`, when given, receives progress lines.
  """
  values = kid_subset_values(real, fake, num_subsets, subset_size, degree, gamma, coef0, seed,
                             subsets, log)
  return float(np.mean(values)), float(np.std(values))


@functools.partial(jax.jit, static_argnames=("degree", "same"))
def _kernel_block_sum(x: jax.Array, row_idx: jax.Array, ys: jax.Array, col_idx: jax.Array,
                      gamma: jax.Array, coef0: jax.Array, degree: int, same: bool) -> jax.Array:
  """Sum of k(x_i, y_j) over a row block and all column blocks, without padding (and i != j)."""

  def step(total, inputs):
    y, cidx = inputs
    kernel = _poly_kernel(x, y, gamma, coef0, degree)
    keep = (row_idx[:, None] >= 0) & (cidx[None, :] >= 0)
    if same:
      keep &= row_idx[:, None] != cidx[None, :]
    return total + jnp.sum(jnp.where(keep, kernel, 0.0)), None

  total, _ = lax.scan(step, jnp.zeros((), x.dtype), (ys, col_idx))
  return total


def _kernel_sum(x: np.ndarray, y: np.ndarray, same: bool, gamma: float, coef0: float,
                degree: int, block_rows: int, block_cols: int) -> float:
  ys, col_idx = _column_blocks(y, min(block_cols, len(y)), jnp.float64)
  block_rows = min(block_rows, len(x))
  gamma_d, coef0_d = jnp.float64(gamma), jnp.float64(coef0)
  total = 0.0
  for start in range(0, len(x), block_rows):
    xb = x[start:start + block_rows]
    row_idx = np.arange(start, start + len(xb))
    pad = block_rows - len(xb)
    if pad:
      xb = np.pad(xb, ((0, pad), (0, 0)))
      row_idx = np.pad(row_idx, (0, pad), constant_values=-1)
    total += float(_kernel_block_sum(jnp.asarray(xb, jnp.float64), jnp.asarray(row_idx), ys,
                                     col_idx, gamma_d, coef0_d, degree, same))
  return total


def mmd2_unbiased(real: np.ndarray, fake: np.ndarray, degree: int = 3,
                  gamma: float | None = None, coef0: float = 1,
                  block_rows: int = DEFAULT_BLOCK_ROWS,
                  block_cols: int = DEFAULT_BLOCK_COLS) -> float:
  """Unbiased MMD^2 of the full sets with KID's polynomial kernel, computed blockwise in float64.

  ``sum_{i!=j} k(x_i, x_j) / (N (N - 1)) + sum_{i!=j} k(y_i, y_j) / (M (M - 1))
  - 2 sum_{i,j} k(x_i, y_j) / (N M)``; for N = M it is torch-fidelity's ``mmd2`` of the full
  kernel matrices.
  """
  real, fake = _pair(real, fake)
  if len(real) < 2 or len(fake) < 2:
    raise ConfigError(f"MMD^2 needs at least 2 samples per set, got {len(real)} and {len(fake)}")
  degree, gamma, coef0 = _kernel_args(real.shape[1], degree, gamma, coef0)
  block_rows = _positive_int(block_rows, "block_rows")
  block_cols = _positive_int(block_cols, "block_cols")
  n, m = len(real), len(fake)
  with jax.enable_x64(True):
    args = (gamma, coef0, degree, block_rows, block_cols)
    xx = _kernel_sum(real, real, True, *args)
    yy = _kernel_sum(fake, fake, True, *args)
    xy = _kernel_sum(real, fake, False, *args)
  return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * xy / (n * m)


# ----------------------------------------------------------------------------------------------
# Blockwise distances

def _column_blocks(y: np.ndarray, block_cols: int, dtype) -> tuple[jax.Array, jax.Array]:
  """`y` padded to whole blocks, [B, block_cols, D], and global column indices (-1 = padding)."""
  num_blocks = -(-len(y) // block_cols)
  pad = num_blocks * block_cols - len(y)
  idx = np.pad(np.arange(len(y)), (0, pad), constant_values=-1)
  y = np.pad(y, ((0, pad), (0, 0)))
  return (jnp.asarray(y.reshape(num_blocks, block_cols, -1), dtype),
          jnp.asarray(idx.reshape(num_blocks, block_cols)))


def _distances(x: jax.Array, xx: jax.Array, y: jax.Array, yy: jax.Array,
               out_dtype) -> jax.Array:
  """scikit-learn's euclidean form: ``sqrt(max(round((-2 x.y + |x|^2) + |y|^2), 0))``."""
  d2 = -2 * jnp.matmul(x, y.T, precision=lax.Precision.HIGHEST)
  d2 = d2 + xx[:, None]
  d2 = d2 + yy[None, :]
  d2 = jnp.maximum(d2.astype(out_dtype), 0)
  return jnp.sqrt(d2)


def _block_distances(x, xx, row_idx, y, yy, col_idx, out_dtype, same):
  d = _distances(x, xx, y, yy, out_dtype)
  if same:  # a point's distance to itself is 0, as scikit-learn sets it
    d = jnp.where(row_idx[:, None] == col_idx[None, :], jnp.zeros((), d.dtype), d)
  return jnp.where(col_idx[None, :] >= 0, d, jnp.asarray(jnp.inf, d.dtype))


def _knn_rows(x, xx, row_idx, ys, yys, col_idx, *, kth: int, out_dtype, same: bool):
  """The `kth` smallest distance of every row of `x` to the columns (1 = nearest)."""

  def step(best, inputs):
    y, yy, cidx = inputs
    d = _block_distances(x, xx, row_idx, y, yy, cidx, out_dtype, same)
    neg, _ = lax.top_k(-jnp.concatenate([best, d], axis=1), kth)
    return -neg, None

  init = jnp.full((x.shape[0], kth), jnp.inf, out_dtype)
  best, _ = lax.scan(step, init, (ys, yys, col_idx))
  return best[:, kth - 1]


def _cross_rows(x, xx, row_idx, row_radii, ys, yys, col_idx, col_radii, *, out_dtype,
                strict: bool):
  """Per row: min distance, any column within its column radius; per column: rows within theirs."""
  within = jnp.less if strict else jnp.less_equal

  def step(carry, inputs):
    row_min, row_hit = carry
    y, yy, cidx, cradii = inputs
    d = _block_distances(x, xx, row_idx, y, yy, cidx, out_dtype, False)
    valid_col = cidx[None, :] >= 0
    row_min = jnp.minimum(row_min, d.min(axis=1))
    row_hit = row_hit | jnp.any(within(d, cradii[None, :]) & valid_col, axis=1)
    valid_row = row_idx[:, None] >= 0
    col_count = jnp.sum(within(d, row_radii[:, None]) & valid_row, axis=0, dtype=jnp.int32)
    return (row_min, row_hit), col_count

  init = (jnp.full((x.shape[0],), jnp.inf, out_dtype), jnp.zeros((x.shape[0],), bool))
  (row_min, row_hit), col_counts = lax.scan(step, init, (ys, yys, col_idx, col_radii))
  return row_min, row_hit, col_counts.reshape(-1)


@functools.lru_cache(maxsize=None)
def _sharded(kind: str, mesh: Mesh, **static):
  """A jitted blockwise function with its row blocks sharded over the mesh's 'data' axis."""
  if kind == "knn":
    fn = functools.partial(_knn_rows, **static)
    sharded_args, replicated_args = 3, 3

    def local(*args):  # one device: [local blocks, rows, ...] -> per-row outputs
      return jax.vmap(fn, in_axes=(0,) * sharded_args + (None,) * replicated_args)(*args)

    out_specs = P(DATA_AXIS)
  else:
    fn = functools.partial(_cross_rows, **static)

    def local(x, xx, row_idx, row_radii, ys, yys, col_idx, col_radii):
      row_min, row_hit, col_counts = jax.vmap(fn, in_axes=(0, 0, 0, 0, None, None, None, None))(
          x, xx, row_idx, row_radii, ys, yys, col_idx, col_radii)
      return row_min, row_hit, lax.psum(col_counts.sum(axis=0), DATA_AXIS)

    sharded_args, replicated_args = 4, 4
    out_specs = (P(DATA_AXIS), P(DATA_AXIS), P())
  in_specs = (P(DATA_AXIS),) * sharded_args + (P(),) * replicated_args
  return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                               check_vma=False))


def default_mesh() -> Mesh:
  """All local devices in a 1-D mesh with axis 'data'."""
  return Mesh(np.array(jax.local_devices()), (DATA_AXIS,))


class _Blocks:
  """Features split for the blockwise kernels: sharded row blocks and replicated column blocks."""

  def __init__(self, fast: bool, block_rows: int, block_cols: int, mesh: Mesh | None,
               progress: Progress | None = None):
    self.block_rows = _positive_int(block_rows, "block_rows")
    self.block_cols = _positive_int(block_cols, "block_cols")
    self.mesh = default_mesh() if mesh is None else mesh
    if DATA_AXIS not in self.mesh.axis_names:
      raise ConfigError(f"the mesh needs a '{DATA_AXIS}' axis, it has {self.mesh.axis_names}")
    self.shards = self.mesh.shape[DATA_AXIS]
    self.fast = bool(fast)
    self.progress = progress  # counts the rows of every pass

  def dtypes(self, x: np.ndarray):
    """(accumulation dtype, distance dtype) for features `x`."""
    if self.fast:
      return jnp.float32, jnp.float32
    return jnp.float64, (jnp.float32 if x.dtype == np.float32 else jnp.float64)

  def norms(self, x: np.ndarray, acc) -> np.ndarray:
    x64 = np.asarray(x, acc)
    return np.einsum("ij,ij->i", x64, x64)

  def columns(self, y: np.ndarray, radii: np.ndarray | None = None):
    acc, out = self.dtypes(y)
    ys, col_idx = _column_blocks(y, min(self.block_cols, len(y)), acc)
    yy = self.norms(y, acc)
    pad = col_idx.size - len(y)
    yys = jnp.asarray(np.pad(yy, (0, pad)).reshape(col_idx.shape), acc)
    replicated = NamedSharding(self.mesh, P())
    cols = [ys, yys, col_idx]
    if radii is not None:
      cols.append(jnp.asarray(np.pad(radii, (0, pad), constant_values=-np.inf)
                              .reshape(col_idx.shape), out))
    return [jax.device_put(c, replicated) for c in cols]

  def row_steps(self, x: np.ndarray, radii: np.ndarray | None = None):
    """Yields (start, count, sharded arrays) for consecutive groups of row blocks."""
    acc, out = self.dtypes(x)
    xx = self.norms(x, acc)
    block_rows = min(self.block_rows, -(-len(x) // self.shards))  # no block of padding only
    step_rows = block_rows * self.shards
    sharded = NamedSharding(self.mesh, P(DATA_AXIS))
    for start in range(0, len(x), step_rows):
      count = min(step_rows, len(x) - start)
      pad = step_rows - count
      shape = (self.shards, block_rows)
      rows = [np.pad(x[start:start + count], ((0, pad), (0, 0))).reshape(shape + (-1,)),
              np.pad(xx[start:start + count], (0, pad)).reshape(shape),
              np.pad(np.arange(start, start + count), (0, pad), constant_values=-1).reshape(shape)]
      dtypes = [acc, acc, None]
      if radii is not None:
        rows.append(np.pad(radii[start:start + count], (0, pad),
                           constant_values=-np.inf).reshape(shape))
        dtypes.append(out)
      yield start, count, [jax.device_put(jnp.asarray(r, d), sharded)
                           for r, d in zip(rows, dtypes)]
      if self.progress is not None:
        self.progress.update(count)


def knn_radii(features: np.ndarray, k: int, *, block_rows: int = DEFAULT_BLOCK_ROWS,
              block_cols: int = DEFAULT_BLOCK_COLS, mesh: Mesh | None = None,
              fast: bool = False, progress: Progress | None = None) -> np.ndarray:
  """Distance of every point to its k-th nearest other point ([N], the distance dtype).

  prdc's ``compute_nearest_neighbour_distances(features, k)``: the (k+1)-th smallest distance of
  the row, the point itself counting as the first (at distance 0).
  """
  x = _features(features, "k-NN")
  k = _positive_int(k, "k")
  if len(x) < k + 1:
    raise ConfigError(f"k-NN radii with k={k} need more than {k} samples, got {len(x)}")
  blocks = _Blocks(fast, block_rows, block_cols, mesh, progress)
  with jax.enable_x64(True):
    _, out = blocks.dtypes(x)
    fn = _sharded("knn", blocks.mesh, kth=k + 1, out_dtype=out, same=True)
    cols = blocks.columns(x)
    radii = np.empty(len(x), np.dtype(out))
    for start, count, rows in blocks.row_steps(x):
      radii[start:start + count] = np.asarray(fn(*rows, *cols)).reshape(-1)[:count]
  return radii


def _cross(real: np.ndarray, fake: np.ndarray, real_radii: np.ndarray, fake_radii: np.ndarray,
           strict: bool, blocks: _Blocks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Real rows against fake columns: (min distance per real, real hit per real, count per fake).

  A real point is hit when some fake point lies within that fake's radius; the count of a fake
  point is how many real points have it within their radius.
  """
  with jax.enable_x64(True):
    _, out = blocks.dtypes(real)
    fn = _sharded("cross", blocks.mesh, out_dtype=out, strict=strict)
    cols = blocks.columns(fake, fake_radii)
    row_min = np.empty(len(real), np.dtype(out))
    row_hit = np.empty(len(real), bool)
    counts = np.zeros(len(fake), np.int64)
    for start, count, rows in blocks.row_steps(real, real_radii):
      r_min, r_hit, c = fn(*rows, *cols)
      row_min[start:start + count] = np.asarray(r_min).reshape(-1)[:count]
      row_hit[start:start + count] = np.asarray(r_hit).reshape(-1)[:count]
      counts += np.asarray(c)[:len(fake)]
  return row_min, row_hit, counts


def pairwise_distances(x: np.ndarray, y: np.ndarray | None = None, *,
                       block_rows: int = DEFAULT_BLOCK_ROWS,
                       block_cols: int = DEFAULT_BLOCK_COLS, fast: bool = False) -> np.ndarray:
  """The full [N, M] distance matrix in the form of the module docstring (small sets only).

  Blockwise like the metrics (same numbers), but it returns the whole matrix: for checks and
  small sets; the metrics never form it.
  """
  same = y is None
  x = _features(x, "x")
  y = x if same else _features(y, "y")
  if x.shape[1] != y.shape[1]:
    raise ConfigError(f"x and y differ in dimension: {x.shape[1]} vs {y.shape[1]}")
  if x.dtype != y.dtype:
    x, y = x.astype(np.float64), y.astype(np.float64)
  blocks = _Blocks(fast, block_rows, block_cols, Mesh(np.array(jax.local_devices()[:1]),
                                                      (DATA_AXIS,)))
  with jax.enable_x64(True):
    acc, out = blocks.dtypes(x)
    fn = jax.jit(_block_distances, static_argnames=("out_dtype", "same"))
    xx, yy = blocks.norms(x, acc), blocks.norms(y, acc)
    result = np.empty((len(x), len(y)), np.dtype(out))
    for i in range(0, len(x), blocks.block_rows):
      for j in range(0, len(y), blocks.block_cols):
        xb, yb = x[i:i + blocks.block_rows], y[j:j + blocks.block_cols]
        result[i:i + len(xb), j:j + len(yb)] = fn(
            jnp.asarray(xb, acc), jnp.asarray(xx[i:i + len(xb)], acc),
            jnp.asarray(np.arange(i, i + len(xb))), jnp.asarray(yb, acc),
            jnp.asarray(yy[j:j + len(yb)], acc), jnp.asarray(np.arange(j, j + len(yb))),
            out_dtype=out, same=same)
  return result


# ----------------------------------------------------------------------------------------------
# Precision, recall, density, coverage

def _progress(what: str, real: np.ndarray, fake: np.ndarray,
              log: Callable[[str], None] | None) -> Progress | None:
  """Progress over the rows of the three passes: real radii, fake radii, real x fake."""
  if log is None:
    return None
  return Progress(what, 2 * len(real) + len(fake), unit="rows", log=log)


def _manifolds(real, fake, k, blocks):
  real, fake = _pair(real, fake)
  k = _positive_int(k, "k")
  if min(len(real), len(fake)) < k + 1:
    raise ConfigError(f"k={k} needs more than {k} real and fake samples, got {len(real)} and "
                      f"{len(fake)}")
  kwargs = dict(block_rows=blocks.block_rows, block_cols=blocks.block_cols, mesh=blocks.mesh,
                fast=blocks.fast, progress=blocks.progress)
  if real.dtype != fake.dtype:  # one distance dtype for both sets
    real, fake = real.astype(np.float64), fake.astype(np.float64)
  return real, fake, k, knn_radii(real, k, **kwargs), knn_radii(fake, k, **kwargs)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, *,
                     block_rows: int = DEFAULT_BLOCK_ROWS, block_cols: int = DEFAULT_BLOCK_COLS,
                     mesh: Mesh | None = None, fast: bool = False,
                     log: Callable[[str], None] | None = None) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al. 2019) as stylegan2-ada's ``pr50k3``.

  A fake sample is precise if it lies within (``<=``) the k-NN radius of some real sample;
  a real sample is recalled if it lies within the k-NN radius of some fake sample. `log`, when
  given, receives progress lines (`ganjax.runtime.progress`).
  """
  blocks = _Blocks(fast, block_rows, block_cols, mesh,
                   _progress(f"precision/recall k={k}", real, fake, log))
  real, fake, k, real_radii, fake_radii = _manifolds(real, fake, k, blocks)
  _, row_hit, counts = _cross(real, fake, real_radii, fake_radii, False, blocks)
  return float(np.mean(counts > 0)), float(np.mean(row_hit))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, *, block_rows: int = DEFAULT_BLOCK_ROWS,
         block_cols: int = DEFAULT_BLOCK_COLS, mesh: Mesh | None = None,
         fast: bool = False, log: Callable[[str], None] | None = None) -> dict[str, float]:
  """Precision, recall, density and coverage exactly as ``prdc.compute_prdc(real, fake, k)``.

  `log`, when given, receives progress lines (`ganjax.runtime.progress`).
  """
  blocks = _Blocks(fast, block_rows, block_cols, mesh,
                   _progress(f"precision/recall/density/coverage k={k}", real, fake, log))
  real, fake, k, real_radii, fake_radii = _manifolds(real, fake, k, blocks)
  row_min, row_hit, counts = _cross(real, fake, real_radii, fake_radii, True, blocks)
  return dict(precision=float(np.mean(counts > 0)), recall=float(np.mean(row_hit)),
              density=float(np.mean(counts) / k), coverage=float(np.mean(row_min < real_radii)))


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5, *,
                     block_rows: int = DEFAULT_BLOCK_ROWS, block_cols: int = DEFAULT_BLOCK_COLS,
                     mesh: Mesh | None = None, fast: bool = False,
                     log: Callable[[str], None] | None = None) -> tuple[float, float]:
  """Density and coverage (Naeem et al. 2020) exactly as ``prdc.compute_prdc``."""
  result = prdc(real, fake, k, block_rows=block_rows, block_cols=block_cols, mesh=mesh,
                fast=fast, log=log)
  return result["density"], result["coverage"]


def compute_all(real_feats: np.ndarray, fake_feats: np.ndarray, *, kid_num_subsets: int = 100,
                kid_subset_size: int = 1000, kid_seed: int = 0, pr_k: int = 3, dc_k: int = 5,
                mesh: Mesh | None = None, fast: bool = False) -> dict[str, float]:
  """KID (mean, std), precision / recall (stylegan2-ada, ``pr_k``), density / coverage (``dc_k``).

  Keys: ``kid``, ``kid_std``, ``precision``, ``recall``, ``density``, ``coverage``.
  """
  kid_mean, kid_std = kid(real_feats, fake_feats, num_subsets=kid_num_subsets,
                          subset_size=kid_subset_size, seed=kid_seed)
  precision, recall = precision_recall(real_feats, fake_feats, pr_k, mesh=mesh, fast=fast)
  density, coverage = density_coverage(real_feats, fake_feats, dc_k, mesh=mesh, fast=fast)
  return dict(kid=kid_mean, kid_std=kid_std, precision=precision, recall=recall,
              density=density, coverage=coverage)
