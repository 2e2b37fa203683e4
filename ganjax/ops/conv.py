"""Convolution layers shared by the generators and discriminators.

`UpConv` is the generator's 2x upsampling transposed convolution, with the semantics of
PyTorch's ``ConvTranspose2d(kernel_size=4, stride=2, padding=1)``: an ``[N, H, W, C]`` input
becomes ``[N, 2H, 2W, features]``. `DownConv` is the discriminator's 2x downsampling
convolution, PyTorch's ``Conv2d(kernel_size=4, stride=2, padding=1)``, with
`flax.linen.Conv`'s parameters (see its docstring). Both have a CPU-fast form built only from
stride-1 "same-size" convolutions, and a oneDNN form (`ganjax.ops.onednn`); on the CPU
``impl="auto"`` takes oneDNN when its extension is built, the phase form otherwise.
`conv_general_dilated` is the same choice for `flax.linen.Conv`'s convolutions.

Backends (``backend``, a field of every model, set by the code from the device mesh with
`backend_for`):

* ``"auto"``: the above: oneDNN on the CPU when its extension is built, XLA's convolutions on
  every other platform;
* ``"xla"``: XLA's convolutions everywhere (what GPUs and TPUs run). `backend_for` picks it for
  a mesh of several CPU devices: XLA cannot split an FFI call, so on a batch-sharded mesh each
  device would run every oneDNN convolution on the whole batch.

UpConv parameters (the same whatever ``impl`` computes them with, so checkpoints move between
backends):

* ``kernel``: ``[4, 4, C, features]``, laid out as `flax.linen.ConvTranspose`'s kernel (no
  flip: the correlation kernel applied to the 2x-dilated input padded by 2). A PyTorch
  ``ConvTranspose2d`` weight ``w`` of shape ``[C, features, 4, 4]`` maps to
  ``kernel[i, j, c, f] = w[c, f, 3 - i, 3 - j]``.
* ``bias``: ``[features]`` (when ``use_bias``).

Implementations (``impl``):

* ``"transpose"``: `jax.lax.conv_transpose`-style convolution with input dilation, the form
  cuDNN and the TPU compiler handle natively.
* ``"phase"``: sub-pixel (phase) decomposition. Output row ``2m + a`` only sees two input rows
  and two kernel rows: phase ``a = 0`` uses input rows ``m - 1, m`` with kernel rows ``0, 2``;
  phase ``a = 1`` uses input rows ``m, m + 1`` with kernel rows ``1, 3`` (columns likewise).
  So the layer is four stride-1 2x2 convolutions of the undilated input, one per phase, whose
  outputs are interleaved: the same result with a quarter of the dilated form's FLOPs (which
  multiplies the inserted zeros). On XLA's CPU backend the dilated form runs on a slow generic
  path (6-20x slower on a 2-core CPU) while stride-1 "same-size"
  convolutions, and their gradients, go to YNNPACK.
* ``"onednn"``: oneDNN's transposed convolution (the input gradient of the stride-2
  convolution with the spatially flipped kernel, channels swapped), CPU only.
* ``"auto"`` (default): when lowering for CPU ``"onednn"`` if `onednn.available`, else
  ``"phase"``; ``"transpose"`` elsewhere (chosen per platform at lowering time with
  `jax.lax.platform_dependent`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import contextlib
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ganjax.ops import onednn

Initializer = Callable[..., Any]
Array = jax.Array

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
BACKENDS = ("auto", "xla")


def check_backend(backend: str) -> None:
  if backend not in BACKENDS:
    raise ValueError(f"unknown convolution backend {backend!r}; choose one of {list(BACKENDS)}")


def backend_for(mesh: jax.sharding.Mesh) -> str:
  """The backend of a mesh: ``"xla"`` for several CPU devices, ``"auto"`` otherwise."""
  devices = list(mesh.devices.flat)
  several_cpus = len(devices) > 1 and all(d.platform == "cpu" for d in devices)
  return "xla" if several_cpus else "auto"


def uses_onednn(backend: str, dtype: Any, platform: str | None = None) -> bool:
  """Whether convolutions of `dtype` traced for `platform` (None: JAX's default backend) with
  `backend` run on oneDNN (`ganjax.ops.onednn`) rather than on XLA's kernels."""
  check_backend(backend)
  platform = platform or jax.default_backend()
  return (platform == "cpu" and backend == "auto" and jnp.dtype(dtype) == jnp.float32
          and onednn.available())


@contextlib.contextmanager
def backend_scope(backend: str) -> Iterator[None]:
  """Traces the body with `backend` for the convolutions of modules that take no
  ``conv_backend`` field (`flax.linen.Conv` with `conv_general_dilated`, the FID Inception
  network): ``"xla"`` switches the oneDNN forms off (`onednn.disabled`)."""
  check_backend(backend)
  with onednn.disabled() if backend == "xla" else contextlib.nullcontext():
    yield


def describe_backend(backend: str, mesh: jax.sharding.Mesh) -> str:
  """One line saying which kernels run the models' convolutions on `mesh`."""
  devices = list(mesh.devices.flat)
  where = f"{len(devices)} {devices[0].platform} device{'s' * (len(devices) > 1)}"
  if devices[0].platform != "cpu":
    return f"XLA's on {where}"
  if backend == "xla":
    return f"XLA's on {where} (oneDNN calls would not be split over the devices)"
  return (f"oneDNN on {where}" if onednn.available() else
          f"XLA's on {where} (oneDNN: {onednn.status()})")

# Per output phase a in {0, 1} (along one spatial axis): the input padding of the stride-1 2x2
# convolution computing it, and the two kernel taps it uses.
_PHASES = {0: ((1, 0), (0, 2)), 1: ((0, 1), (1, 3))}


def _check_nhwc(x: Array, kernel: Array, name: str) -> None:
  if x.ndim != 4:
    raise ValueError(f"{name} expects an NHWC input of rank 4, got shape {x.shape}")
  if x.shape[-1] != kernel.shape[2]:
    raise ValueError(f"{name}: input has {x.shape[-1]} channels, kernel expects "
                     f"{kernel.shape[2]}")


def _onednn_supports(lhs: Array, rhs: Array, lhs_dilation, rhs_dilation, dimension_numbers,
                     feature_group_count: int, batch_group_count: int,
                     preferred_element_type) -> bool:
  """Whether a `lax.conv_general_dilated` call has the form `onednn.conv` computes."""
  if lhs.ndim != 4 or rhs.ndim != 4 or lhs.dtype != jnp.float32 or rhs.dtype != jnp.float32:
    return False
  if preferred_element_type not in (None, jnp.float32):
    return False
  if feature_group_count != 1 or batch_group_count != 1:
    return False
  if any(d != 1 for d in (lhs_dilation or ())) or any(d != 1 for d in (rhs_dilation or ())):
    return False
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  return dn == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DIMENSION_NUMBERS)


def conv_general_dilated(lhs: Array, rhs: Array, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision=None,
                         preferred_element_type=None, backend: str = "auto") -> Array:
  """`jax.lax.conv_general_dilated`, on oneDNN when lowering for CPU (if it is built).

  A drop-in for `flax.linen.Conv`'s ``conv_general_dilated`` field, same parameters, same
  result up to float rounding. Float32 NHWC / HWIO convolutions without dilation, groups or
  negative padding take `onednn.conv` on the CPU; every other call, and every other platform,
  is `jax.lax.conv_general_dilated` unchanged. ``backend="xla"``: always XLA's.
  """
  def xla(a: Array, b: Array) -> Array:
    return lax.conv_general_dilated(
        a, b, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
        feature_group_count, batch_group_count, precision, preferred_element_type)

  check_backend(backend)
  if not (backend == "auto" and onednn.available() and _onednn_supports(
      lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
      batch_group_count, preferred_element_type)):
    return xla(lhs, rhs)
  pads = (lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
          if isinstance(padding, str) else padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in pads)
  if any(p < 0 for pair in pads for p in pair):
    return xla(lhs, rhs)
  strides = tuple(int(s) for s in window_strides)
  return lax.platform_dependent(lhs, rhs, cpu=lambda a, b: onednn.conv(a, b, strides, pads),
                                default=xla)


def conv_fn(backend: str) -> Callable[..., Array]:
  """The ``conv_general_dilated`` field of `flax.linen.Conv` for `backend`."""
  check_backend(backend)
  return functools.partial(conv_general_dilated, backend=backend)


def up_conv_transpose(x: Array, kernel: Array) -> Array:
  """2x transposed convolution (k=4, s=2, p=1) as one input-dilated convolution."""
  _check_nhwc(x, kernel, "up_conv")
  return lax.conv_general_dilated(
      x, kernel, window_strides=(1, 1), padding=((2, 2), (2, 2)), lhs_dilation=(2, 2),
      dimension_numbers=_DIMENSION_NUMBERS)


def up_conv_phase(x: Array, kernel: Array) -> Array:
  """2x transposed convolution (k=4, s=2, p=1) as four stride-1 2x2 convolutions.

  ``y[:, 2m + a, 2n + b] = conv2x2(pad(x, P_a, P_b), K[T_a][:, T_b])[:, m, n]`` with
  ``(P_0, T_0) = ((1, 0), (0, 2))`` and ``(P_1, T_1) = ((0, 1), (1, 3))``. Each of the four
  convolutions has the input's spatial size, so its input and kernel gradients are stride-1
  convolutions of the same kind.
  """
  _check_nhwc(x, kernel, "up_conv")
  n, h, w, _ = x.shape
  f = kernel.shape[-1]
  rows = []
  for a in (0, 1):
    pad_a, taps_a = _PHASES[a]
    row = []
    for b in (0, 1):
      pad_b, taps_b = _PHASES[b]
      k = jnp.stack([jnp.stack([kernel[i, j] for j in taps_b]) for i in taps_a])
      row.append(lax.conv_general_dilated(
          x, k, window_strides=(1, 1), padding=(pad_a, pad_b),
          dimension_numbers=_DIMENSION_NUMBERS))
    rows.append(jnp.stack(row, axis=3))  # [N, H, W, 2 (b), F]
  y = jnp.stack(rows, axis=2)  # [N, H, 2 (a), W, 2 (b), F]
  return y.reshape(n, 2 * h, 2 * w, f)


def up_conv_onednn(x: Array, kernel: Array) -> Array:
  """2x transposed convolution (k=4, s=2, p=1) as oneDNN's convolution input gradient.

  ``y = D(x, w)`` for the forward convolution with stride 2, padding 1 and kernel
  ``w[k, l, f, c] = kernel[3 - k, 3 - l, c, f]`` (`flax.linen.ConvTranspose` correlates the
  dilated input with ``kernel``; the input gradient correlates with the flipped kernel).
  """
  _check_nhwc(x, kernel, "up_conv")
  n, h, w, _ = x.shape
  return onednn.conv_transpose(x, onednn.flipped_kernel(kernel),
                               (n, 2 * h, 2 * w, kernel.shape[-1]), (2, 2), ((1, 1), (1, 1)))


def _cpu_form(x: Array, kernel: Array, onednn_form: Callable[[Array, Array], Array],
              xla_form: Callable[[Array, Array], Array], backend: str
              ) -> Callable[[Array, Array], Array]:
  """The form ``impl="auto"`` lowers for the CPU: oneDNN's if built (float32) and the backend
  is ``"auto"``, else XLA's."""
  use_onednn = kernel.dtype == jnp.float32 and uses_onednn(backend, x.dtype, "cpu")
  return onednn_form if use_onednn else xla_form


UP_CONV_IMPLS: dict[str, Callable[[Array, Array], Array]] = {
    "transpose": up_conv_transpose,
    "phase": up_conv_phase,
    "onednn": up_conv_onednn,
}


def up_conv(x: Array, kernel: Array, impl: str = "auto", backend: str = "auto") -> Array:
  """PyTorch ``ConvTranspose2d(C, F, 4, stride=2, padding=1)`` on NHWC input (no bias).

  Args:
    x: ``[N, H, W, C]``.
    kernel: ``[4, 4, C, F]`` in `flax.linen.ConvTranspose` layout (see the module docstring).
    impl: ``"auto"``, ``"phase"``, ``"transpose"`` or ``"onednn"`` (CPU only); all give the
      same result.
    backend: with ``impl="auto"``, ``"xla"`` keeps XLA's forms on the CPU (see `BACKENDS`).

  Returns:
    ``[N, 2H, 2W, F]``.
  """
  if kernel.shape[:2] != (4, 4):
    raise ValueError(f"up_conv expects a [4, 4, C, F] kernel, got shape {kernel.shape}")
  if impl == "auto":
    cpu = _cpu_form(x, kernel, up_conv_onednn, up_conv_phase, backend)
    return lax.platform_dependent(x, kernel, cpu=cpu, default=up_conv_transpose)
  if impl not in UP_CONV_IMPLS:
    raise ValueError(f"unknown up_conv impl {impl!r}; expected 'auto' or one of "
                     f"{sorted(UP_CONV_IMPLS)}")
  return UP_CONV_IMPLS[impl](x, kernel)


# Per input phase a in {0, 1} (x[a::2] along one spatial axis) of the stride-2 convolution:
# the padding of the stride-1 2x2 convolution over that phase, and the two kernel taps it uses.
_DOWN_PHASES = {0: ((0, 1), (1, 3)), 1: ((1, 0), (0, 2))}


def _check_even(x: Array, name: str) -> None:
  if x.shape[1] % 2 or x.shape[2] % 2:
    raise ValueError(f"{name} needs an even height and width, got {x.shape[1:3]}")


def down_conv_strided(x: Array, kernel: Array) -> Array:
  """Convolution k=4, stride 2, padding 1 as one strided convolution."""
  _check_nhwc(x, kernel, "down_conv")
  return lax.conv_general_dilated(
      x, kernel, window_strides=(2, 2), padding=((1, 1), (1, 1)),
      dimension_numbers=_DIMENSION_NUMBERS)


def down_conv_phase(x: Array, kernel: Array) -> Array:
  """Convolution k=4, stride 2, padding 1 as a sum of four stride-1 2x2 convolutions.

  ``y[m] = sum_k x[2m + k - 1] K[k]``; splitting x into its even and odd rows/columns
  ``x_a = x[a::2]``, phase 0 contributes ``x_0[m] K[1] + x_0[m + 1] K[3]`` and phase 1
  ``x_1[m - 1] K[0] + x_1[m] K[2]``: each a "same-size" 2x2 convolution of an ``[N, H/2, W/2, C]``
  phase, so the input and kernel gradients are stride-1 convolutions too (no input dilation).
  """
  _check_nhwc(x, kernel, "down_conv")
  _check_even(x, "down_conv")
  y = None
  for a in (0, 1):
    pad_a, taps_a = _DOWN_PHASES[a]
    for b in (0, 1):
      pad_b, taps_b = _DOWN_PHASES[b]
      k = jnp.stack([jnp.stack([kernel[i, j] for j in taps_b]) for i in taps_a])
      term = lax.conv_general_dilated(
          x[:, a::2, b::2], k, window_strides=(1, 1), padding=(pad_a, pad_b),
          dimension_numbers=_DIMENSION_NUMBERS)
      y = term if y is None else y + term
  return y


def down_conv_onednn(x: Array, kernel: Array) -> Array:
  """Convolution k=4, stride 2, padding 1 as one oneDNN strided convolution."""
  _check_nhwc(x, kernel, "down_conv")
  return onednn.conv(x, kernel, (2, 2), ((1, 1), (1, 1)))


DOWN_CONV_IMPLS: dict[str, Callable[[Array, Array], Array]] = {
    "strided": down_conv_strided,
    "phase": down_conv_phase,
    "onednn": down_conv_onednn,
}


def down_conv(x: Array, kernel: Array, impl: str = "auto", backend: str = "auto") -> Array:
  """PyTorch ``Conv2d(C, F, 4, stride=2, padding=1)`` on NHWC input (no bias).

  Args:
    x: ``[N, H, W, C]`` with H, W even.
    kernel: ``[4, 4, C, F]`` in `flax.linen.Conv` layout (HWIO; a PyTorch weight ``w`` of shape
      ``[F, C, 4, 4]`` maps to ``kernel = w.transpose(2, 3, 1, 0)``).
    impl: ``"auto"``, ``"phase"``, ``"strided"`` or ``"onednn"`` (CPU only); all give the same
      result.
    backend: with ``impl="auto"``, ``"xla"`` keeps XLA's forms on the CPU (see `BACKENDS`).

  Returns:
    ``[N, H/2, W/2, F]``.
  """
  if kernel.shape[:2] != (4, 4):
    raise ValueError(f"down_conv expects a [4, 4, C, F] kernel, got shape {kernel.shape}")
  if impl == "auto":
    cpu = _cpu_form(x, kernel, down_conv_onednn, down_conv_phase, backend)
    return lax.platform_dependent(x, kernel, cpu=cpu, default=down_conv_strided)
  if impl not in DOWN_CONV_IMPLS:
    raise ValueError(f"unknown down_conv impl {impl!r}; expected 'auto' or one of "
                     f"{sorted(DOWN_CONV_IMPLS)}")
  return DOWN_CONV_IMPLS[impl](x, kernel)


class Conv(nn.Conv):
  """`flax.linen.Conv` that can leave its bias to the layer after it (``defer_bias``).

  With ``defer_bias`` it returns ``(conv(x), bias)`` instead of their sum, as `UpConv` and
  `DownConv` do, for a normalization that takes the bias as its shift
  (`ganjax.models.layers.normalization`). Parameters are `flax.linen.Conv`'s either way.
  """

  defer_bias: bool = False

  @nn.compact
  def __call__(self, inputs: Array) -> Array | tuple[Array, Array | None]:
    if not self.defer_bias:
      return super().__call__(inputs)
    unbiased = self.clone(parent=self, name="unbiased", use_bias=False, defer_bias=False)
    nn.share_scope(self, unbiased)  # its kernel is this module's ``kernel``
    y = unbiased(inputs)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    return y, None if bias is None else bias.astype(y.dtype)


class _Conv4x4Stride2(nn.Module):
  """The parameters and bias shared by `UpConv` and `DownConv`; subclasses give `convolve`.

  Attributes:
    features: output channels F.
    use_bias: add a learned ``bias`` of shape ``[F]``.
    defer_bias: return ``(conv(x), bias)`` instead of their sum, for a following normalization
      that takes the bias as its shift (`ganjax.models.layers.normalization`): batch norm
      then never forms the sum, a full pass over the output. Parameters are the same.
    impl: which form computes the convolution (see the subclass); parameters do not depend on
      it.
    backend: ``"auto"`` or ``"xla"`` (see `BACKENDS`), for ``impl="auto"``.
  """

  features: int
  use_bias: bool = True
  defer_bias: bool = False
  impl: str = "auto"
  backend: str = "auto"
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32

  def convolve(self, x: Array, kernel: Array) -> Array:
    raise NotImplementedError

  @nn.compact
  def __call__(self, x: Array) -> Array | tuple[Array, Array | None]:
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = self.convolve(x, kernel)
    if self.defer_bias:
      return y, bias
    if bias is not None:
      y = y + bias
    return y


class UpConv(_Conv4x4Stride2):
  """Transposed convolution, kernel 4, stride 2, padding 1: ``[N,H,W,C] -> [N,2H,2W,F]``.

  ``impl``: ``"auto"`` (oneDNN or else the phase decomposition on CPU, the dilated convolution
  elsewhere), ``"onednn"``, ``"phase"`` or ``"transpose"``.
  """

  def convolve(self, x: Array, kernel: Array) -> Array:
    return up_conv(x, kernel, self.impl, self.backend)


class DownConv(_Conv4x4Stride2):
  """Convolution, kernel 4, stride 2, padding 1: ``[N,H,W,C] -> [N,H/2,W/2,F]``.

  Parameters are `flax.linen.Conv`'s (``kernel`` ``[4, 4, C, F]``, ``bias`` ``[F]``), so a
  ``nn.Conv(F, (4, 4), strides=2, padding=1)`` checkpoint loads unchanged. ``impl``:
  ``"auto"`` (oneDNN or else the phase decomposition on CPU, the strided convolution
  elsewhere), ``"onednn"``, ``"phase"`` or ``"strided"``.
  """

  def convolve(self, x: Array, kernel: Array) -> Array:
    return down_conv(x, kernel, self.impl, self.backend)
