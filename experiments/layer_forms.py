"""Research: alternative forms of the DCGAN's transposed / strided convolutions (CPU speed).

Every function maps (x NHWC, kernel) -> y with the semantics of
  up:   flax.linen.ConvTranspose(F, (4, 4), strides=2, padding=((2, 2), (2, 2)))  (kernel [4,4,C,F])
  down: flax.linen.Conv(F, (4, 4), strides=2, padding=((1, 1), (1, 1)))          (kernel [4,4,C,F])

`UP` and `DOWN` name the forms `experiments.layer_bench` times (``--forms``); all but
``ganjax_phase`` / ``phase`` (`ganjax.ops.conv`'s phase forms) are XLA convolutions and dots
written here. The findings are in docs/PERF_NOTES.md (rows 2-9 of the findings, the per-layer
table).
"""
from jax import lax
import jax.numpy as jnp

from ganjax.ops import conv as ganjax_conv

DN = ("NHWC", "HWIO", "NHWC")

# The DCGAN's convolutions at width 64 on 32x32 images, (C, F, H_in) each: the generator's
# transposed convolutions (C -> F channels, H_in -> 2 H_in), the discriminator's strided ones
# (H_in -> H_in / 2) and the stride-1 3x3 ones of both.
UP_LAYERS = [(512, 256, 4), (256, 128, 8), (128, 64, 16)]
DOWN_LAYERS = [(64, 64, 32), (128, 128, 16), (256, 256, 8)]
S1_LAYERS = [(3, 64, 32), (64, 128, 16), (128, 256, 8), (256, 512, 4), (64, 3, 32)]


def conv(x, k, strides=(1, 1), padding="VALID", lhs_dilation=None):
  return lax.conv_general_dilated(x, k, strides, padding, lhs_dilation=lhs_dilation,
                                  dimension_numbers=DN)


# ----------------------------------------------------------------------------- up (2x)
def up_lax(x, k):
  return conv(x, k, padding=((2, 2), (2, 2)), lhs_dilation=(2, 2))


def _interleave(phases, n, h, w, f):
  # phases[a][b]: [N,H,W,F] -> [N,2H,2W,F], y[2i+a, 2j+b] = phases[a][b][i, j]
  p = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # [N,H,2,W,2,F]
  return p.reshape(n, 2 * h, 2 * w, f)


# phase a uses (padding, taps): a=0 -> pad (1,0), kernel taps [0, 2]; a=1 -> pad (0,1), taps [1, 3]
_PHASE = {0: ((1, 0), (0, 2)), 1: ((0, 1), (1, 3))}


def up_phase4(x, k):
  n, h, w, _ = x.shape
  f = k.shape[-1]
  rows = []
  for a in (0, 1):
    pa, ta = _PHASE[a]
    row = []
    for b in (0, 1):
      pb, tb = _PHASE[b]
      kk = k[jnp.array(ta)][:, jnp.array(tb)]
      row.append(conv(x, kk, padding=(pa, pb)))
    rows.append(row)
  return _interleave(rows, n, h, w, f)


def _phase3x3_kernel(k):
  # [4,4,C,F] -> [3,3,C,2,2,F]: window over padded x at offsets (m-1, m, m+1)
  c, f = k.shape[2], k.shape[3]
  z = jnp.zeros((c, f), k.dtype)
  taps = {0: (0, 2, None), 1: (None, 1, 3)}  # offset index -> tap for phase a
  rows = []
  for u in range(3):
    cols = []
    for v in range(3):
      ph = []
      for a in (0, 1):
        pr = []
        for b in (0, 1):
          ta, tb = taps[a][u], taps[b][v]
          pr.append(z if ta is None or tb is None else k[ta, tb])
        ph.append(jnp.stack(pr, axis=1))  # [C,2,F]
      cols.append(jnp.stack(ph, axis=1))  # [C,2,2,F]
    rows.append(jnp.stack(cols))
  return jnp.stack(rows)  # [3,3,C,2,2,F]


def up_phase3x3(x, k):
  n, h, w, c = x.shape
  f = k.shape[-1]
  kk = _phase3x3_kernel(k).reshape(3, 3, c, 4 * f)
  y = conv(x, kk, padding=((1, 1), (1, 1)))  # [N,H,W,(2,2,F)]
  y = y.reshape(n, h, w, 2, 2, f).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(n, 2 * h, 2 * w, f)


def up_phase2x2(x, k):
  """One stride-1 2x2 conv over x padded by 1 to 4F channels (all phases), then pick phases.

  Phase (a, b) of the output at (m, n) is the 2x2 window at (m + a, n + b) of the padded input
  with kernel taps K[2u + a, 2v + b]; the kernel is a reshape of K, no zeros.
  """
  n, h, w, c = x.shape
  f = k.shape[-1]
  kk = k.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, c, 4 * f)
  # Padding the input explicitly (kept out of the conv by the barrier) keeps the output no larger
  # than the operand, which XLA's CPU conv library (YNNPACK) requires.
  xp = lax.optimization_barrier(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))
  y = conv(xp, kk)  # [N, H+1, W+1, (a, b, F)]
  y = y.reshape(n, h + 1, w + 1, 2, 2, f)
  rows = [[y[:, a:a + h, b:b + w, a, b] for b in (0, 1)] for a in (0, 1)]
  return _interleave(rows, n, h, w, f)


def up_matmul(x, k):
  """1x1 'conv' to all 16 taps (one GEMM), then overlap-add (col2im)."""
  n, h, w, c = x.shape
  f = k.shape[-1]
  z = jnp.einsum("nhwc,ckf->nhwkf", x, k.transpose(2, 0, 1, 3).reshape(c, 16, f))
  z = z.reshape(n, h, w, 4, 4, f)
  zp = jnp.pad(z, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
  # y[2m+a] = sum over (offset d in {m-1,m,m+1}, tap) per _PHASE:
  # a=0: z[m-1,K0]+z[m,K2]; a=1: z[m,K1]+z[m+1,K3]
  # a -> ((offset index in the padded z, tap), (offset, tap))
  sel = {0: ((0, 0), (1, 2)), 1: ((1, 1), (2, 3))}
  rows = []
  for a in (0, 1):
    row = []
    for b in (0, 1):
      acc = 0
      for (ua, ta) in sel[a]:
        for (vb, tb) in sel[b]:
          acc = acc + zp[:, ua:ua + h, vb:vb + w, ta, tb]
      row.append(acc)
    rows.append(row)
  return _interleave(rows, n, h, w, f)


# ----------------------------------------------------------------------------- down (/2)
def down_lax(x, k):
  return conv(x, k, strides=(2, 2), padding=((1, 1), (1, 1)))


def _s2d(x):
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(
      n, h // 2, w // 2, 4 * c)


def down_s2d(x, k):
  c, f = k.shape[2], k.shape[3]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  s = _s2d(xp)  # [N, H/2+1, W/2+1, (2,2,C)]
  kk = k.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, f)
  return conv(s, kk)


def down_im2col(x, k):
  n, h, w, c = x.shape
  f = k.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = [xp[:, i:i + h:2, j:j + w:2, :] for i in range(4) for j in range(4)]
  p = jnp.stack(cols, axis=3)  # [N,H/2,W/2,16,C]
  return jnp.einsum("nhwkc,kcf->nhwf", p, k.reshape(16, c, f))


UP = {"lax": up_lax, "phase4": up_phase4, "ganjax_phase": ganjax_conv.up_conv_phase,
      "phase3x3": up_phase3x3, "phase2x2": up_phase2x2, "matmul": up_matmul,
      "onednn": ganjax_conv.up_conv_onednn}
DOWN = {"lax": down_lax, "s2d": down_s2d, "im2col": down_im2col,
        "phase": ganjax_conv.down_conv_phase, "onednn": ganjax_conv.down_conv_onednn}
