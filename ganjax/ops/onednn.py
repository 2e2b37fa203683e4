"""2-D convolutions on the CPU through oneDNN, called from inside XLA programs (XLA FFI).

XLA's CPU backend (jaxlib 0.10) runs convolutions with YNNPACK, whose kernel gradients and
strided / input-dilated convolutions are 1.3-7x slower on this workload than oneDNN, the
library PyTorch uses (measured in the project's performance notes). The optional extension
``ganjax._onednn_conv`` (``csrc/onednn_conv.cc``, built by ``setup.py``) exposes oneDNN's three
convolution passes as XLA FFI handlers. For ``y = F(x, w)`` with strides ``s`` and padding
``p`` (NHWC activations, HWIO kernels)::

    F(x, w)[n, o, f]  = sum_{k, c} x[n, s*o + k - p, c] w[k, c, f]          forward
    D(g, w)[n, i, c]  = sum_{o, k, f : s*o + k - p = i} g[n, o, f] w[k, c, f]  backward data
    W(x, g)[k, c, f]  = sum_{n, o} x[n, s*o + k - p, c] g[n, o, f]          backward weights

(one spatial axis shown). All three are bilinear pieces of one trilinear form
``<F(x, w), g> = <x, D(g, w)> = <w, W(x, g)>``, so each one's vector-Jacobian product is made
of the other two:

* ``F(x, w)`` with cotangent ``g``: ``x_bar = D(g, w)``, ``w_bar = W(x, g)``;
* ``D(g, w)`` with cotangent ``h``: ``g_bar = F(h, w)``, ``w_bar = W(h, g)``;
* ``W(x, g)`` with cotangent ``k``: ``x_bar = D(g, k)``, ``g_bar = F(x, k)``.

Reverse-mode derivatives of any order (the gradient penalty's double backward) therefore stay
on oneDNN. ``D`` with a flipped kernel is also the transposed convolution (`conv.UpConv`).
Under `jax.vmap` the handlers get a leading batch of independent convolutions
(``vmap_method="broadcast_all"``): a population of models with their own weights.

Two algorithms compute each pass (`Window.algorithm`): oneDNN's direct convolution
primitives (``"direct"``), or the im2col form (``"gemm"``): one matrix product per chunk of the
minibatch between the matrix of input patches ``col[(n, o), (k, c)] = x[n, s*o + k - p, c]``
and the kernel read as a ``[KH*KW*C, F]`` matrix (``D`` scatters the patch gradients
``g w^T`` back onto the image; ``W = col^T g``). By default `conv` and `conv_transpose` take the
GEMM form per pass by `default_algorithm`: for outputs of at most `GEMM_MAX_OUTPUT_PIXELS`
pixels per image, where oneDNN's direct kernels have too few rows to block over (but not for the
kernel gradient of a strided convolution), and for input gradients onto images of at most
`GEMM_MAX_INPUT_CHANNELS` channels.

The extension has one more handler, not a convolution: `channel_sums` (``csrc/channel_sums.cc``),
the per-channel sums ``sum a`` and ``sum a * b`` in one pass over both, from which batch norm
takes its statistics and their gradient (`ganjax.ops.batch_norm`); it follows the same switches.

Only float32 with 2 spatial dimensions is handled; `conv.conv_general_dilated` routes
everything else, and every non-CPU platform, to `jax.lax.conv_general_dilated`.

Several CPU devices: XLA's partitioner does not know how to split an FFI call, so under a
batch-sharded ``jax.jit`` over a mesh of CPU devices it gathers the operands and runs each
oneDNN call whole on every device (the results are the same; the devices do not share the
convolution work). So the trainers build their models with the ``"xla"`` convolution backend
on a mesh of several CPU devices (`ganjax.ops.conv.backend_for`); GPUs and TPUs are unaffected.

Switching it off: ``GANJAX_ONEDNN=0`` in the environment (read once, when the extension would
be loaded), or ``with onednn.disabled(): ...`` around the tracing of a function (for example
to get XLA's cost analysis, which cannot see into the FFI calls).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import importlib
import os
import pathlib
from importlib import metadata
from typing import Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Padding = tuple[tuple[int, int], tuple[int, int]]

_TARGETS = {"forward": "ganjax_onednn_conv_forward",
            "backward_data": "ganjax_onednn_conv_backward_data",
            "backward_weights": "ganjax_onednn_conv_backward_weights"}
# The extension's handler beyond the convolutions (`channel_sums`).
_CHANNEL_SUMS = "ganjax_channel_sums"


def library_path() -> pathlib.Path:
  """``libdnnl.so.3`` of the ``onednn-cpu-gomp`` wheel, the oneDNN the extension links."""
  for f in metadata.files("onednn-cpu-gomp") or []:
    path = pathlib.Path(f.locate())
    if path.name == "libdnnl.so.3" and path.exists():
      return path
  raise ImportError("libdnnl.so.3 is not in the onednn-cpu-gomp distribution")


def _preload_library() -> None:
  """Loads oneDNN's library (it is not on the loader path) before the extension."""
  ctypes.CDLL(str(library_path()), mode=ctypes.RTLD_GLOBAL)


@functools.cache
def _load() -> tuple[bool, str]:
  """Loads the extension and registers its handlers once per process: (ok, reason)."""
  if os.environ.get("GANJAX_ONEDNN", "1") == "0":
    return False, "switched off by GANJAX_ONEDNN=0"
  try:
    _preload_library()
    extension = importlib.import_module("ganjax._onednn_conv")
  except (ImportError, OSError, metadata.PackageNotFoundError) as e:
    return False, f"{type(e).__name__}: {e}"
  for attr, target in {**_TARGETS, "channel_sums": _CHANNEL_SUMS}.items():
    jax.ffi.register_ffi_target(target, getattr(extension, attr), platform="cpu")
  return True, (f"oneDNN {extension.onednn_version_major}."
                f"{extension.onednn_version_minor}")


_DISABLED = contextvars.ContextVar("ganjax_onednn_disabled", default=False)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
  """Functions traced inside this context use XLA's convolutions, not oneDNN's."""
  token = _DISABLED.set(True)
  try:
    yield
  finally:
    _DISABLED.reset(token)


def available() -> bool:
  """Whether convolutions traced now can use oneDNN (built, loaded, not switched off)."""
  return not _DISABLED.get() and _load()[0]


def status() -> str:
  """The oneDNN version in use, or why the extension could not be loaded."""
  return _load()[1]


ALGORITHMS = {"direct": 0, "gemm": 1}
# The forward pass of a stride-1 convolution can also run as the input gradient of its
# transposed convolution (`Window.transposed`), in that pass's own algorithm.
TRANSPOSED = "transposed"
PASSES = tuple(_TARGETS)  # forward, backward_data, backward_weights
# Outputs of at most this many pixels per image (4x4) run as im2col + GEMM by default ...
GEMM_MAX_OUTPUT_PIXELS = 16
# ... and so do input gradients onto images of at most this many channels (RGB).
GEMM_MAX_INPUT_CHANNELS = 4


class Window(NamedTuple):
  """The static part of one convolution: shapes, strides, explicit padding, the algorithm of
  each pass (`PASSES`)."""

  x_shape: tuple[int, int, int, int]  # N, H, W, C
  w_shape: tuple[int, int, int, int]  # KH, KW, C, F
  strides: tuple[int, int]
  padding: Padding
  # One per pass: keys of ALGORITHMS, or TRANSPOSED for the forward pass.
  algorithms: tuple[str, str, str] = ("direct",) * 3

  @classmethod
  def make(cls, x_shape, w_shape, strides, padding, algorithm: str | None = None) -> "Window":
    """A window with tuple fields; ``algorithm`` for every pass, or None: `default_algorithm`
    of each."""
    window = cls(tuple(x_shape), tuple(w_shape), tuple(strides),
                 tuple(tuple(p) for p in padding))
    if algorithm is not None and algorithm not in ALGORITHMS:
      raise ValueError(f"onednn: unknown algorithm {algorithm!r}; expected one of "
                       f"{sorted(ALGORITHMS)}")
    return window._replace(algorithms=tuple(
        algorithm or default_algorithm(target, window) for target in PASSES))

  def algorithm(self, target: str) -> str:
    """The algorithm of pass `target` (a name in `PASSES`)."""
    return self.algorithms[PASSES.index(target)]

  @property
  def y_shape(self) -> tuple[int, int, int, int]:
    n, h, w, _ = self.x_shape
    kh, kw, _, f = self.w_shape
    (pt, pb), (pl, pr) = self.padding
    return (n, (h + pt + pb - kh) // self.strides[0] + 1,
            (w + pl + pr - kw) // self.strides[1] + 1, f)

  def transposed(self) -> "Window":
    """The stride-1 convolution whose input gradient is this one's forward pass.

    For stride 1, ``y[i] = sum_k x[i + k - p_lo] w[k]`` is the input gradient (the transposed
    convolution) of the convolution from ``y``'s shape to ``x``'s with the flipped kernel
    ``w'[k, l, f, c] = w[KH-1-k, KW-1-l, c, f]`` and padding ``(KH-1-p_lo, KH-1-p_hi)`` per
    axis (`flipped_kernel`).
    """
    if self.strides != (1, 1):
      raise ValueError(f"onednn: only a stride-1 convolution is a transposed one's input "
                       f"gradient, not strides {self.strides}")
    kh, kw, c, f = self.w_shape
    (pt, pb), (pl, pr) = self.padding
    padding = ((kh - 1 - pt, kh - 1 - pb), (kw - 1 - pl, kw - 1 - pr))
    if min(min(p) for p in padding) < 0:
      raise ValueError(f"onednn: padding {self.padding} exceeds the {kh}x{kw} window")
    return Window.make(self.y_shape, (kh, kw, f, c), (1, 1), padding)

  def attributes(self, target: str) -> dict[str, np.int64]:
    """The FFI call's attributes for pass `target`."""
    (pt, pb), (pl, pr) = self.padding
    values = dict(stride_h=self.strides[0], stride_w=self.strides[1], pad_top=pt,
                  pad_bottom=pb, pad_left=pl, pad_right=pr,
                  algorithm=ALGORITHMS[self.algorithm(target)])
    return {k: np.int64(v) for k, v in values.items()}


def default_algorithm(target: str, window: Window) -> str:
  """The algorithm pass `target` of `window` takes by default: ``"gemm"`` or ``"direct"``.

  The GEMM form for outputs of at most `GEMM_MAX_OUTPUT_PIXELS` pixels per image (the
  forward pass and the input gradient), except for the kernel gradient of a strided
  convolution, and for the input gradient onto an image of at most `GEMM_MAX_INPUT_CHANNELS`
  channels (a ``[N*H*W, KH*KW*C]`` product with few columns, scattered back); the direct
  primitives otherwise. The forward pass of a stride-1 convolution onto at most
  `GEMM_MAX_INPUT_CHANNELS` channels (an RGB image) runs as the input gradient of its
  transposed convolution (`TRANSPOSED`: a GEMM with few columns and a small scatter, instead of
  a direct primitive producing 3 channels). From the three passes of every DCGAN layer timed
  alone with each algorithm (docs/PERF_NOTES.md).
  """
  small = small_output(window)
  if (target == "forward" and not small and window.y_shape[3] <= GEMM_MAX_INPUT_CHANNELS
      and _transposable(window)):
    return TRANSPOSED
  gemm = {"forward": small,
          "backward_data": small or window.x_shape[3] <= GEMM_MAX_INPUT_CHANNELS,
          "backward_weights": small and window.strides == (1, 1)}[target]
  return "gemm" if gemm else "direct"


def small_output(window: Window) -> bool:
  """Whether `window`'s output has at most `GEMM_MAX_OUTPUT_PIXELS` pixels per image (too few
  rows for oneDNN's direct kernels to block over)."""
  _, ho, wo, _ = window.y_shape
  return ho * wo <= GEMM_MAX_OUTPUT_PIXELS


def _transposable(window: Window) -> bool:
  kh, kw = window.w_shape[:2]
  (pt, pb), (pl, pr) = window.padding
  return window.strides == (1, 1) and max(pt, pb) < kh and max(pl, pr) < kw


def flipped_kernel(w: Array) -> Array:
  """``w'[k, l, f, c] = w[KH-1-k, KW-1-l, c, f]``: the kernel of `Window.transposed`."""
  return jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))


def _require() -> None:
  if not available():
    raise RuntimeError(f"the ganjax CPU extension (oneDNN convolutions, channel sums) is not "
                       f"available: {status()}")


def channel_sums(a: Array, b: Array) -> Array:
  """``s[0, c] = sum_r a[r, c]``, ``s[1, c] = sum_r a[r, c] * b[r, c]`` over every axis of the
  float32 ``a`` and ``b`` (one shape, rank 2 or more) but the last, in one pass over both
  (``csrc/channel_sums.cc``; not differentiable: `ganjax.ops.batch_norm.channel_sums` is)."""
  _require()
  if a.shape != b.shape or a.ndim < 2 or a.dtype != jnp.float32 or b.dtype != jnp.float32:
    raise ValueError(f"channel_sums: needs two float32 arrays of one shape of rank 2 or more, not "
                     f"{a.dtype}{list(a.shape)} and {b.dtype}{list(b.shape)}")
  call = jax.ffi.ffi_call(_CHANNEL_SUMS, jax.ShapeDtypeStruct((2, a.shape[-1]), jnp.float32),
                          vmap_method="broadcast_all")
  return call(a, b)


def _call(target: str, a: Array, b: Array, out_shape: tuple[int, ...], window: Window) -> Array:
  _require()
  call = jax.ffi.ffi_call(_TARGETS[target], jax.ShapeDtypeStruct(out_shape, jnp.float32),
                          vmap_method="broadcast_all")
  return call(a, b, **window.attributes(target))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def forward(x: Array, w: Array, window: Window) -> Array:
  """``F(x, w)``: the convolution, ``[N, H, W, C] x [KH, KW, C, F] -> [N, Ho, Wo, F]``."""
  if window.algorithm("forward") == TRANSPOSED:
    return _call("backward_data", x, flipped_kernel(w), window.y_shape, window.transposed())
  return _call("forward", x, w, window.y_shape, window)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def backward_data(g: Array, w: Array, window: Window) -> Array:
  """``D(g, w)``: the input gradient of `forward` for output cotangent ``g``."""
  return _call("backward_data", g, w, window.x_shape, window)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def backward_weights(x: Array, g: Array, window: Window) -> Array:
  """``W(x, g)``: the kernel gradient of `forward` for output cotangent ``g``."""
  return _call("backward_weights", x, g, window.w_shape, window)


def _save(fn):
  return lambda a, b, window: (fn(a, b, window), (a, b))


forward.defvjp(_save(forward), lambda window, res, g: (
    backward_data(g, res[1], window), backward_weights(res[0], g, window)))
backward_data.defvjp(_save(backward_data), lambda window, res, h: (
    forward(h, res[1], window), backward_weights(h, res[0], window)))
backward_weights.defvjp(_save(backward_weights), lambda window, res, k: (
    backward_data(res[1], k, window), forward(res[0], k, window)))


def conv(x: Array, w: Array, strides: tuple[int, int], padding: Padding,
         algorithm: str | None = None) -> Array:
  """A strided, explicitly padded NHWC / HWIO float32 convolution on oneDNN.

  ``algorithm``: ``"direct"`` or ``"gemm"`` for every pass, or ``None``: `default_algorithm`
  of each pass.
  """
  return forward(x, w, Window.make(x.shape, w.shape, strides, padding, algorithm))


def conv_transpose(x: Array, w: Array, out_shape: tuple[int, int, int, int],
                   strides: tuple[int, int], padding: Padding,
                   algorithm: str | None = None) -> Array:
  """The transposed convolution ``D(x, w)``: the input gradient of ``conv(., w)`` at ``x``.

  ``w`` is the kernel of the forward convolution, ``[KH, KW, out_shape[-1], x.shape[-1]]``;
  ``algorithm`` as in `conv` (``None``: by the passes of the forward convolution, whose output
  is ``x``).
  """
  window = Window.make(out_shape, w.shape, strides, padding, algorithm)
  if window.y_shape != tuple(x.shape):
    raise ValueError(f"conv_transpose: an output of shape {out_shape} does not map to an input "
                     f"of shape {x.shape} with strides {strides} and padding {padding}")
  return backward_data(x, w, window)
