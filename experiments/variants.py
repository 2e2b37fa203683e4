"""Research-only variants of the step's models, switched on by name in `bench_train_step`.

  python -m experiments.bench_train_step --model dcgan --variant_b onednn_direct

Each variant patches ganjax modules in this process only (experiments, never the library). A
variant takes effect in the steps traced after it is applied, so ``--variant_b`` compares the
step without it (compiled first) against the step with it, in one process. The convolution
forms of `UpConv` / `DownConv` are options of `bench_train_step` (``--up_impl``,
``--down_impl``), not variants.
"""

VARIANTS = {}


def variant(fn):
  VARIANTS[fn.__name__] = fn
  return fn


def apply(names):
  for name in names:
    if name not in VARIANTS:
      raise ValueError(f"unknown variant {name!r}; known: {sorted(VARIANTS)}")
    VARIANTS[name]()


@variant
def onednn_direct():
  """Every oneDNN convolution as its direct primitive (no im2col + GEMM for small outputs)."""
  from ganjax.ops import onednn  # pylint: disable=g-import-not-at-top
  onednn.GEMM_MAX_OUTPUT_PIXELS = 0
  onednn.GEMM_MAX_INPUT_CHANNELS = 0


@variant
def onednn_gemm_by_output_size():
  """The GEMM form for every pass of a layer with at most `GEMM_MAX_OUTPUT_PIXELS` output pixels
  per image, the direct primitives for every other (the default rule before
  `onednn.default_algorithm` chose per pass)."""
  from ganjax.ops import onednn  # pylint: disable=g-import-not-at-top

  def by_output_size(target, window):
    del target
    return "gemm" if onednn.small_output(window) else "direct"

  onednn.default_algorithm = by_output_size


@variant
def onednn_gemm_strided_kernel_gradients():
  """`onednn.default_algorithm`, with the GEMM form also for the kernel gradients of strided
  convolutions with small outputs."""
  from ganjax.ops import onednn  # pylint: disable=g-import-not-at-top
  default = onednn.default_algorithm

  def rule(target, window):
    if target == "backward_weights" and onednn.small_output(window):
      return "gemm"
    return default(target, window)

  onednn.default_algorithm = rule


@variant
def bias_added_before_batch_norm():
  """Batch norm of ``conv(x) + b`` with the sum formed first, as before
  `ganjax.models.layers.BatchNorm` took the bias of `Conv` / `UpConv` / `DownConv` as its
  shift."""
  from ganjax.models import layers  # pylint: disable=g-import-not-at-top
  batch_norm = layers.NORMALIZATIONS["batch"]
  layers.NORMALIZATIONS["batch"] = lambda *args: layers.shifted(batch_norm(*args))


@variant
def batch_norm_by_flax():
  """Batch norm's statistics and gradient as flax computes them (XLA's reductions, two per
  pair of sums), not `ganjax.ops.batch_norm`'s one-pass sums on the CPU extension."""
  from ganjax.models import layers  # pylint: disable=g-import-not-at-top
  batch_norm = layers.NORMALIZATIONS["batch"]
  layers.NORMALIZATIONS["batch"] = (
      lambda train, dtype, name, backend: batch_norm(train, dtype, name, "xla"))
