"""ADA: adaptive discriminator augmentation with the 'bgc' pipeline.

Karras, Aittala, Hellsten, Laine, Lehtinen and Aila, "Training Generative Adversarial Networks
with Limited Data", NeurIPS 2020 (arXiv:2006.06676); reference implementation
NVlabs/stylegan2-ada-pytorch, ``training/augment.py`` (``AugmentPipe``) for the pipeline and
``training/training_loop.py`` for the adjustment of p.

Every transformation of the pipeline is applied to each image independently with probability
``p`` (times a per-transformation multiplier, 1 for every transformation of the presets here).
Its random parameter is drawn for every image and replaced by the identity value where a second
draw ``u ~ U[0, 1)`` is not below the probability. In the reference's order:

pixel blitting (``blit``)
  * ``xflip``: ``i = floor(2 U)``, x-flip if ``i = 1``;
  * ``rotate90``: ``k = floor(4 U)``, rotation by ``k * 90`` degrees;
  * ``xint``: ``t = (2 U - 1) * 0.125`` per axis (one draw per image gates both axes),
    translation by ``round(t_x W), round(t_y H)`` pixels;
general geometric (``geom``)
  * ``scale``: isotropic ``s = 2^(0.2 z)``, ``z ~ N(0, 1)`` (lognormal, std ``0.2 ln 2``);
  * ``rotate_pre``: ``theta = (2 U - 1) * pi``, with probability ``p_rot = 1 - sqrt(1 - p)`` so
    that P(pre or post rotation) = p;
  * ``aniso``: ``s = 2^(0.2 z)``, scaling by ``(s, 1 / s)``;
  * ``rotate_post``: as ``rotate_pre``, after the anisotropic scaling;
  * ``xfrac``: ``t = 0.125 z`` per axis, translation by ``(t_x W, t_y H)`` pixels;
colour (``color``), on RGB as homogeneous 4-vectors
  * ``brightness``: ``b = 0.2 z``, ``rgb + b``;
  * ``contrast``: ``c = 2^(0.5 z)``, ``rgb * c``;
  * ``lumaflip``: ``i = floor(2 U)``, Householder reflection ``I - 2 v v^T i`` about the luma
    axis ``v = (1, 1, 1, 0) / sqrt(3)``;
  * ``hue``: ``theta = (2 U - 1) * pi``, rotation about ``v``;
  * ``saturation``: ``s = 2^(1 z)``, ``v v^T + (I - v v^T) s``.

The geometric transformations compose into one inverse 3x3 matrix ``G_inv`` per image (output
pixel -> input pixel, in pixel units with the origin at the image centre, ``G_inv = F_1^-1 @ ...
@ F_8^-1`` in the order above) and the colour transformations into one 4x4 matrix ``C = M_13 @
... @ M_9`` per image; single-channel images use the mean of C's three colour rows and skip hue
and saturation, as the reference does.

Geometric resampling differs from the reference. The reference reflect-pads the image (by at
most ``W - 1`` / ``H - 1`` pixels, beyond which it reads zeros), upsamples 2x with the 'sym6'
wavelet low-pass filter, samples bilinearly (``grid_sample``, ``align_corners=False``) and
downsamples 2x with the same filter. `resample` instead samples the original image bilinearly
at ``G_inv @ (x - cx, y - cy, 1) + (cx, cy)``, ``c = (size - 1) / 2``, with every tap index
reflected (mirror without repeating the edge pixel, ``np.pad(mode='reflect')``) as often as
needed, so it never reads zeros. Consequences: no anti-aliasing low-pass (fractional shifts blur
a little more, strong minification aliases); an image whose transform is a pure blit (flip,
90-degree rotation, integer translation) is reproduced exactly, where the reference passes it
through the near-identity up/down filter pair; far outside the image the content keeps mirroring.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.errors import ConfigError

Array = jax.Array

XINT_MAX = 0.125        # Range of integer translation, relative to the image size.
SCALE_STD = 0.2         # Log2 standard deviation of isotropic scaling.
ROTATE_MAX = 1.0        # Range of arbitrary rotation, 1 = full circle.
ANISO_STD = 0.2         # Log2 standard deviation of anisotropic scaling.
XFRAC_STD = 0.125       # Standard deviation of fractional translation, relative to the size.
BRIGHTNESS_STD = 0.2    # Standard deviation of brightness.
CONTRAST_STD = 0.5      # Log2 standard deviation of contrast.
HUE_MAX = 1.0           # Range of hue rotation, 1 = full circle.
SATURATION_STD = 1.0    # Log2 standard deviation of saturation.

_LUMA = np.array([1.0, 1.0, 1.0, 0.0], np.float32) / np.sqrt(3.0)


# -- Matrix helpers (batched: one matrix per image) --------------------------------------------


def _matrix(rows: list[list[Array | float]], like: Array) -> Array:
  """Stacks scalars/[N] arrays into [N, len(rows), len(rows[0])]."""
  n = like.shape[0]
  full = [[jnp.broadcast_to(jnp.asarray(e, jnp.float32), (n,)) for e in row] for row in rows]
  return jnp.stack([jnp.stack(row, axis=-1) for row in full], axis=-2)


def translate2d(tx: Array, ty: Array) -> Array:
  """[[1, 0, tx], [0, 1, ty], [0, 0, 1]] per image."""
  return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale2d(sx: Array, sy: Array) -> Array:
  """diag(sx, sy, 1) per image."""
  return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate2d_cs(cos: Array, sin: Array) -> Array:
  """[[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]] per image."""
  return _matrix([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], cos)


def rotate2d(theta: Array) -> Array:
  """Rotation by ``theta`` radians (x right, y down) per image."""
  return rotate2d_cs(jnp.cos(theta), jnp.sin(theta))


def translate3d(t: Array) -> Array:
  """Adds ``t`` to each of r, g, b: the 4x4 homogeneous translation by (t, t, t)."""
  return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], t)


def scale3d(s: Array) -> Array:
  """Multiplies r, g, b by ``s``: diag(s, s, s, 1)."""
  return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], s)


def rotate3d(v: np.ndarray, theta: Array) -> Array:
  """Rotation by ``theta`` about the unit axis ``v`` (Rodrigues), 4x4 homogeneous."""
  vx, vy, vz = (float(c) for c in v[:3])
  s, c = jnp.sin(theta), jnp.cos(theta)
  cc = 1 - c
  return _matrix([
      [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
      [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
      [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
      [0, 0, 0, 1]], theta)


# -- The transformations: inverse geometric factors and colour factors -------------------------
# A geometric factor returns its inverse (output -> input) matrix, right-multiplied into G_inv;
# a colour factor returns its matrix, left-multiplied into C.


def xflip_inv(i: Array, height: int, width: int) -> Array:
  """``scale2d_inv(1 - 2 i, 1)`` = diag(1 - 2 i, 1, 1): mirrors x when ``i = 1``."""
  del height, width
  return scale2d(1 - 2 * i, jnp.ones_like(i))


def rotate90_inv(k: Array, height: int, width: int) -> Array:
  """``rotate2d_inv(-pi / 2 * k)`` = rotate2d(pi / 2 * k), with exact cos/sin for k = 0..3.

  The exact table makes a 90-degree rotation of a square image an exact ``jnp.rot90(x, k,
  axes=(1, 2))``; the reference evaluates cos/sin in floating point.
  """
  del height, width
  k = jnp.mod(k.astype(jnp.int32), 4)
  cos = jnp.asarray([1.0, 0.0, -1.0, 0.0], jnp.float32)[k]
  sin = jnp.asarray([0.0, 1.0, 0.0, -1.0], jnp.float32)[k]
  return rotate2d_cs(cos, sin)


def xint_inv(t: Array, height: int, width: int) -> Array:
  """``translate2d_inv(round(t_x W), round(t_y H))``: ``out[y, x] = in[y - ty, x - tx]``.

  ``round`` is round-half-to-even, as ``torch.round``.
  """
  return translate2d(-jnp.round(t[:, 0] * width), -jnp.round(t[:, 1] * height))


def scale_inv(s: Array, height: int, width: int) -> Array:
  """``scale2d_inv(s, s)`` = diag(1 / s, 1 / s, 1)."""
  del height, width
  return scale2d(1 / s, 1 / s)


def rotate_inv(theta: Array, height: int, width: int) -> Array:
  """``rotate2d_inv(-theta)`` = rotate2d(theta)."""
  del height, width
  return rotate2d(theta)


def aniso_inv(s: Array, height: int, width: int) -> Array:
  """``scale2d_inv(s, 1 / s)`` = diag(1 / s, s, 1)."""
  del height, width
  return scale2d(1 / s, s)


def xfrac_inv(t: Array, height: int, width: int) -> Array:
  """``translate2d_inv(t_x W, t_y H)``."""
  return translate2d(-t[:, 0] * width, -t[:, 1] * height)


def brightness_matrix(b: Array, height: int, width: int) -> Array:
  """``translate3d(b, b, b)``: rgb + b."""
  del height, width
  return translate3d(b)


def contrast_matrix(c: Array, height: int, width: int) -> Array:
  """``scale3d(c, c, c)``: rgb * c."""
  del height, width
  return scale3d(c)


def lumaflip_matrix(i: Array, height: int, width: int) -> Array:
  """``I - 2 v v^T i``: the Householder reflection about the luma axis when ``i = 1``."""
  del height, width
  vv = jnp.asarray(np.outer(_LUMA, _LUMA))
  return jnp.eye(4, dtype=jnp.float32) - 2 * vv * i[:, None, None]


def hue_matrix(theta: Array, height: int, width: int) -> Array:
  """``rotate3d(v, theta)``: rotation of rgb about the luma axis."""
  del height, width
  return rotate3d(_LUMA, theta)


def saturation_matrix(s: Array, height: int, width: int) -> Array:
  """``v v^T + (I - v v^T) s``: scales the chroma (the part of rgb orthogonal to v) by s."""
  del height, width
  vv = jnp.asarray(np.outer(_LUMA, _LUMA))
  return vv + (jnp.eye(4, dtype=jnp.float32) - vv) * s[:, None, None]


# -- Samplers of the raw parameters ------------------------------------------------------------


def _coin(key: Array, n: int, faces: int) -> Array:
  return jnp.floor(jax.random.uniform(key, (n,)) * faces)


def _symmetric(key: Array, shape: tuple[int, ...], half_range: float) -> Array:
  return (jax.random.uniform(key, shape) * 2 - 1) * half_range


def _log2_normal(key: Array, n: int, std: float) -> Array:
  return jnp.exp2(jax.random.normal(key, (n,)) * std)


class Transform(NamedTuple):
  """One transformation of the pipeline.

  sample: (key, n) -> raw parameter, [N] or [N, 2] float32.
  identity: the parameter value that leaves the image unchanged.
  matrix: (parameter, height, width) -> [N, 3, 3] inverse factor (geometric) or [N, 4, 4] (colour).
  group: "geometric" or "color".
  rotation: gated with ``p_rot = 1 - sqrt(1 - p)`` instead of ``p``.
  rgb_only: skipped for single-channel images.
  """

  sample: Callable[[Array, int], Array]
  identity: float
  matrix: Callable[[Array, int, int], Array]
  group: str
  rotation: bool = False
  rgb_only: bool = False


TRANSFORMS: dict[str, Transform] = {
    "xflip": Transform(lambda k, n: _coin(k, n, 2), 0.0, xflip_inv, "geometric"),
    "rotate90": Transform(lambda k, n: _coin(k, n, 4), 0.0, rotate90_inv, "geometric"),
    "xint": Transform(lambda k, n: _symmetric(k, (n, 2), XINT_MAX), 0.0, xint_inv, "geometric"),
    "scale": Transform(lambda k, n: _log2_normal(k, n, SCALE_STD), 1.0, scale_inv, "geometric"),
    "rotate_pre": Transform(lambda k, n: _symmetric(k, (n,), math.pi * ROTATE_MAX), 0.0,
                            rotate_inv, "geometric", rotation=True),
    "aniso": Transform(lambda k, n: _log2_normal(k, n, ANISO_STD), 1.0, aniso_inv, "geometric"),
    "rotate_post": Transform(lambda k, n: _symmetric(k, (n,), math.pi * ROTATE_MAX), 0.0,
                             rotate_inv, "geometric", rotation=True),
    "xfrac": Transform(lambda k, n: jax.random.normal(k, (n, 2)) * XFRAC_STD, 0.0, xfrac_inv,
                       "geometric"),
    "brightness": Transform(lambda k, n: jax.random.normal(k, (n,)) * BRIGHTNESS_STD, 0.0,
                            brightness_matrix, "color"),
    "contrast": Transform(lambda k, n: _log2_normal(k, n, CONTRAST_STD), 1.0, contrast_matrix,
                          "color"),
    "lumaflip": Transform(lambda k, n: _coin(k, n, 2), 0.0, lumaflip_matrix, "color"),
    "hue": Transform(lambda k, n: _symmetric(k, (n,), math.pi * HUE_MAX), 0.0, hue_matrix,
                     "color", rgb_only=True),
    "saturation": Transform(lambda k, n: _log2_normal(k, n, SATURATION_STD), 1.0,
                            saturation_matrix, "color", rgb_only=True),
}

_BLIT = ("xflip", "rotate90", "xint")
_GEOM = ("scale", "rotate_pre", "aniso", "rotate_post", "xfrac")
_COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")

# The reference's ``augpipe_specs`` that use these groups, all multipliers 1.
PRESETS: dict[str, tuple[str, ...]] = {
    "blit": _BLIT,
    "geom": _GEOM,
    "color": _COLOR,
    "bg": _BLIT + _GEOM,
    "bgc": _BLIT + _GEOM + _COLOR,
}


def preset_transforms(preset: str) -> tuple[str, ...]:
  """The transformation names of a preset of `PRESETS`, in the reference's order."""
  if preset not in PRESETS:
    raise ConfigError(f"unknown ADA preset {preset!r}; choose one of {sorted(PRESETS)}")
  return PRESETS[preset]


# -- Parameters --------------------------------------------------------------------------------


class AdaParams(NamedTuple):
  """Raw random parameters of a batch, before gating by p.

  values: name -> raw parameter of each image ([N] or [N, 2]).
  draws: name -> [N] U[0, 1); the transformation applies to image n iff ``draws[n] < prob``.
  """

  values: dict[str, Array]
  draws: dict[str, Array]


def sample_ada_params(key: Array, n: int, names: tuple[str, ...] = PRESETS["bgc"]) -> AdaParams:
  """Draws the raw parameter and the gating uniform of each transformation for ``n`` images."""
  keys = jax.random.split(key, 2 * len(names))
  values = {name: TRANSFORMS[name].sample(keys[2 * i], n) for i, name in enumerate(names)}
  draws = {name: jax.random.uniform(keys[2 * i + 1], (n,)) for i, name in enumerate(names)}
  return AdaParams(values, draws)


def identity_params(n: int, names: tuple[str, ...] = PRESETS["bgc"]) -> AdaParams:
  """Parameters that leave every image unchanged at any p (identity values, draws 1)."""
  values = {}
  for name in names:
    like = jax.eval_shape(lambda key, name=name: TRANSFORMS[name].sample(key, n), jax.random.key(0))
    values[name] = jnp.full(like.shape, TRANSFORMS[name].identity, jnp.float32)
  return AdaParams(values, {name: jnp.ones((n,), jnp.float32) for name in names})


def rotation_probability(p: Array | float) -> Array:
  """``p_rot = 1 - sqrt(1 - p)``: two independent rotations, each with p_rot, give P(any) = p."""
  return 1 - jnp.sqrt(jnp.clip(1 - jnp.asarray(p, jnp.float32), 0, 1))


def gate_ada_params(params: AdaParams, p: Array | float
                    ) -> tuple[dict[str, Array], dict[str, Array]]:
  """Effective parameters and the applied flags: ``where(u < prob, raw, identity)``.

  ``prob = p`` (the reference's ``multiplier * p`` with multiplier 1), or ``p_rot = 1 - sqrt(1 -
  p)`` for the two rotations. Returns ``(values, applied)``, both name -> per-image arrays.
  """
  p = jnp.asarray(p, jnp.float32)
  values, applied = {}, {}
  for name, raw in params.values.items():
    transform = TRANSFORMS[name]
    prob = rotation_probability(p) if transform.rotation else p
    hit = params.draws[name] < prob
    applied[name] = hit
    mask = hit.reshape(hit.shape + (1,) * (raw.ndim - 1))
    values[name] = jnp.where(mask, raw, jnp.asarray(transform.identity, raw.dtype))
  return values, applied


def _compose(values: Mapping[str, Array], group: str, height: int, width: int,
             channels: int) -> Array | None:
  matrix = None
  for name, value in values.items():
    transform = TRANSFORMS[name]
    if transform.group != group or (transform.rgb_only and channels == 1):
      continue
    factor = transform.matrix(value, height, width)
    if matrix is None:
      matrix = factor
    elif group == "geometric":
      matrix = _matmul(matrix, factor)
    else:
      matrix = _matmul(factor, matrix)
  return matrix


def _matmul(a: Array, b: Array) -> Array:
  """Batched a @ b as an exact elementwise sum (no reduced-precision matmul units)."""
  return jnp.sum(a[:, :, :, None] * b[:, None, :, :], axis=2)


def geometric_matrix(values: Mapping[str, Array], height: int, width: int) -> Array | None:
  """``G_inv = F_1^-1 @ F_2^-1 @ ...`` over the geometric entries of ``values``, [N, 3, 3].

  None when ``values`` has no geometric transformation.
  """
  return _compose(values, "geometric", height, width, 3)


def color_matrix(values: Mapping[str, Array], channels: int = 3) -> Array | None:
  """``C = ... @ M_2 @ M_1`` over the colour entries of ``values``, [N, 4, 4] (None if none).

  Hue and saturation are left out for ``channels == 1``.
  """
  return _compose(values, "color", 0, 0, channels)


# -- Applying the matrices ---------------------------------------------------------------------


def _reflect(index: Array, size: int) -> Array:
  """Mirror index into [0, size): ... 2 1 | 0 1 .. size-1 | size-2 ... (edge not repeated)."""
  period = max(2 * (size - 1), 1)
  folded = jnp.mod(index, period)
  return (size - 1) - jnp.abs(folded - (size - 1))


def resample(images: Array, g_inv: Array) -> Array:
  """Bilinear resampling ``out(p) = in(G_inv p)`` with reflected borders.

  Output pixel (y, x) of image n reads the input at ``(sx, sy, 1) = G_inv[n] @ (x - cx, y - cy,
  1) + (cx, cy, 0)``, ``cx = (W - 1) / 2``, ``cy = (H - 1) / 2``, interpolated bilinearly between
  the four neighbouring pixels, each neighbour's index mirrored into the image (`_reflect`).
  Differentiable with respect to ``images``; an exact integer matrix reproduces pixels exactly.

  Args:
    images: [N, H, W, C].
    g_inv: [N, 3, 3] output -> input matrices in centred pixel units.
  """
  _, h, w, _ = images.shape
  cx, cy = (w - 1) / 2, (h - 1) / 2
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - cy,
                        jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij")
  g = g_inv[:, :, :, None, None]                                       # [N, 3, 3, 1, 1]
  sx = g[:, 0, 0] * xs + g[:, 0, 1] * ys + g[:, 0, 2] + cx             # [N, H, W]
  sy = g[:, 1, 0] * xs + g[:, 1, 1] * ys + g[:, 1, 2] + cy
  x0, y0 = jnp.floor(sx), jnp.floor(sy)
  wx, wy = (sx - x0)[..., None], (sy - y0)[..., None]
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  x0r, x1r = _reflect(x0, w), _reflect(x0 + 1, w)
  y0r, y1r = _reflect(y0, h), _reflect(y0 + 1, h)
  gather = jax.vmap(lambda image, rows, cols: image[rows, cols])
  x = images.astype(jnp.promote_types(images.dtype, jnp.float32))
  top = gather(x, y0r, x0r) * (1 - wx) + gather(x, y0r, x1r) * wx
  bottom = gather(x, y1r, x0r) * (1 - wx) + gather(x, y1r, x1r) * wx
  return (top * (1 - wy) + bottom * wy).astype(images.dtype)


def apply_color(images: Array, color: Array) -> Array:
  """``rgb_out = C[:3, :3] @ rgb + C[:3, 3]`` per pixel; for one channel ``x * sum(m[:3]) + m[3]``.

  ``m`` is the mean of C's three colour rows, as in the reference.

  Args:
    images: [N, H, W, 3] or [N, H, W, 1].
    color: [N, 4, 4].
  """
  x = images.astype(jnp.promote_types(images.dtype, jnp.float32))
  channels = images.shape[-1]
  if channels == 3:
    linear = color[:, None, None, :3, :3]                               # [N, 1, 1, 3, 3]
    out = jnp.sum(linear * x[..., None, :], axis=-1) + color[:, None, None, :3, 3]
  elif channels == 1:
    m = jnp.mean(color[:, :3, :], axis=1)                               # [N, 4]
    out = x * jnp.sum(m[:, :3], axis=1)[:, None, None, None] + m[:, 3, None, None, None]
  else:
    raise ConfigError(f"ADA colour transforms need 1 or 3 channels, got {channels}")
  return out.astype(images.dtype)


# -- The pipeline ------------------------------------------------------------------------------


def _concrete(p: Array | float) -> float | None:
  """p as a Python float, or None when it is traced."""
  try:
    return float(p)
  except (TypeError, jax.errors.ConcretizationTypeError):
    return None


def _check_probability(p: Array | float) -> float | None:
  if jnp.ndim(p) != 0:
    raise ConfigError(f"ADA probability p must be a scalar, got shape {jnp.shape(p)}")
  value = _concrete(p)
  if value is not None and not 0.0 <= value <= 1.0:
    raise ConfigError(f"ADA probability p must be in [0, 1], got {value}")
  return value


def augment_with_params(images: Array, params: AdaParams, p: Array | float) -> Array:
  """The pipeline with given raw parameters: gate by p, resample by G_inv, transform by C.

  Images for which no transformation was drawn are returned bit for bit.
  """
  _, h, w, c = images.shape
  values, applied = gate_ada_params(params, p)
  out = images
  g_inv = geometric_matrix(values, h, w)
  if g_inv is not None:
    out = resample(out, g_inv)
  color = color_matrix(values, c)
  if color is not None:
    out = apply_color(out, color)
  touched = [hit for name, hit in applied.items()
             if not (TRANSFORMS[name].rgb_only and c == 1)]
  if not touched:
    return images
  any_applied = jnp.any(jnp.stack(touched), axis=0)
  return jnp.where(any_applied[:, None, None, None], out, images)


def ada_augment(images: Array, key: Array, p: Array | float, *, preset: str = "bgc") -> Array:
  """ADA ``AugmentPipe`` with the 'bgc' preset: blit, geometric and colour groups, strength p.

  Pure, jittable with p traced (one compilation serves every p) and differentiable with respect
  to ``images``. With ``p = 0`` the output equals the input exactly (it is ``images`` itself when
  p is a concrete 0; under jit the augmentation branch is skipped by ``lax.cond``).

  Args:
    images: [N, H, W, C] in [-1, 1], C = 3 or 1.
    key: PRNG key of this batch's parameters (`sample_ada_params`).
    p: augmentation probability in [0, 1], a Python float or a scalar array.
    preset: a key of `PRESETS` ('bgc' by default).
  """
  names = preset_transforms(preset)
  value = _check_probability(p)
  if value == 0.0:
    return images
  n, _, _, c = images.shape
  if c not in (1, 3) and any(TRANSFORMS[name].group == "color" for name in names):
    raise ConfigError(f"ADA colour transforms need 1 or 3 channels, got {c}")

  def augment(x: Array) -> Array:
    return augment_with_params(x, sample_ada_params(key, n, names), p)

  return jax.lax.cond(jnp.asarray(p) > 0, augment, lambda x: x, images)


# -- The adaptive heuristic --------------------------------------------------------------------


def ada_adjustment(batch_size: int, interval: int = 4, speed_images: int = 500_000) -> float:
  """Step of p per adjustment: ``batch_size * interval / speed_images``."""
  for name, number in (("batch_size", batch_size), ("interval", interval),
                       ("speed_images", speed_images)):
    if number <= 0:
      raise ConfigError(f"ADA {name} must be positive, got {number}")
  return batch_size * interval / speed_images


def ada_update(p: Array | float, rt_sign_sum: Array | float, count: Array | int, *,
               target: float = 0.6, batch_size: int, interval: int = 4,
               speed_images: int = 500_000) -> Array:
  """The ADA heuristic: ``p + sign(r_t - target) * batch_size * interval / speed_images``.

  ``r_t = E[sign(D(x_real))] = rt_sign_sum / count`` over the discriminator's outputs on real
  images since the last adjustment (the reference's ``Loss/signs/real`` statistic); call this
  every ``interval`` steps, then reset both accumulators. Reference defaults
  (``training_loop.py``): ``ada_target = 0.6``, ``ada_interval = 4``, ``ada_kimg = 500``
  (``speed_images = ada_kimg * 1000``: p can move by 1 in 500k real images). The result is
  clipped to [0, 1]; with ``count == 0`` p is returned unchanged. Pure and jittable.

  Args:
    p: current probability.
    rt_sign_sum: sum of ``sign(D(real))`` over the interval.
    count: number of outputs in that sum.
    target: target value of r_t.
    batch_size: real images per step (the global batch).
    interval: steps between adjustments.
    speed_images: real images for p to change by 1.
  """
  step = ada_adjustment(batch_size, interval, speed_images)
  p = jnp.asarray(p, jnp.float32)
  count = jnp.asarray(count, jnp.float32)
  rt = jnp.asarray(rt_sign_sum, jnp.float32) / jnp.maximum(count, 1)
  new_p = jnp.clip(p + jnp.sign(rt - target) * step, 0.0, 1.0)
  return jnp.where(count > 0, new_p, p)
