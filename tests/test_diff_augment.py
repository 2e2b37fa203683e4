"""DiffAugment and ADA: hand-computed ops, shapes and ranges, gradients, identity at p = 0."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.diffaug import ada, diffaugment as da
from ganjax.errors import ConfigError

POLICIES = ["color", "translation", "cutout", "color,translation,cutout"]


def _images(n=2, size=8, channels=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, size, size, channels), minval=-1, maxval=1)


# -- DiffAugment ops on hand-computed examples -------------------------------------------------

# One image of two pixels: (0.2, -0.4, 0.8) with channel mean 0.2, (1, 0, -1) with mean 0;
# mean over the image 0.1.
PIXELS = jnp.array([[[[0.2, -0.4, 0.8], [1.0, 0.0, -1.0]]]])


def test_brightness_adds_the_shift():
  out = da.brightness(PIXELS, jnp.array([0.25]))
  np.testing.assert_allclose(out, [[[[0.45, -0.15, 1.05], [1.25, 0.25, -0.75]]]], atol=1e-6)


def test_saturation_scales_around_the_channel_mean():
  out = da.saturation(PIXELS, jnp.array([0.5]))
  np.testing.assert_allclose(out, [[[[0.2, -0.1, 0.5], [0.5, 0.0, -0.5]]]], atol=1e-6)


def test_contrast_scales_around_the_image_mean():
  out = da.contrast(PIXELS, jnp.array([1.5]))
  np.testing.assert_allclose(out, [[[[0.25, -0.65, 1.15], [1.45, -0.05, -1.55]]]], atol=1e-6)


def test_colour_ops_use_one_parameter_per_image():
  x = _images()
  xs = np.asarray(x)
  b, s, c = np.array([0.3, -0.2]), np.array([0.0, 1.7]), np.array([0.6, 1.4])
  want = xs + b[:, None, None, None]
  np.testing.assert_allclose(da.brightness(x, jnp.asarray(b)), want, atol=1e-6)
  m = xs.mean(-1, keepdims=True)
  np.testing.assert_allclose(da.saturation(x, jnp.asarray(s)),
                             (xs - m) * s[:, None, None, None] + m, atol=1e-6)
  m = xs.mean((1, 2, 3), keepdims=True)
  np.testing.assert_allclose(da.contrast(x, jnp.asarray(c)),
                             (xs - m) * c[:, None, None, None] + m, atol=1e-6)


def test_translation_shifts_with_zero_fill():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  x2 = jnp.concatenate([x, x])
  out = da.translation(x2, jnp.array([[1, -1], [-2, 2]]))[..., 0]
  np.testing.assert_array_equal(out[0], [[0, 4, 5, 6], [0, 8, 9, 10], [0, 12, 13, 14],
                                         [0, 0, 0, 0]])
  np.testing.assert_array_equal(out[1], [[0, 0, 0, 0], [0, 0, 0, 0], [2, 3, 0, 0], [6, 7, 0, 0]])


def test_cutout_zeroes_a_cropped_square():
  x = jnp.ones((2, 4, 4, 2))
  out = da.cutout(x, jnp.array([[1, 2], [0, 4]]))
  one = [[1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1], [1, 1, 1, 1]]
  two = [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]
  np.testing.assert_array_equal(out[..., 0], [one, two])
  np.testing.assert_array_equal(out[..., 1], [one, two])


def test_samplers_cover_the_reference_ranges():
  x = jnp.zeros((512, 8, 8, 3))
  key = jax.random.key(1)
  b = da.sample_brightness(key, x)
  s = da.sample_saturation(key, x)
  c = da.sample_contrast(key, x)
  assert -0.5 <= b.min() and b.max() < 0.5
  assert 0 <= s.min() and s.max() < 2
  assert 0.5 <= c.min() and c.max() < 1.5
  shift = da.sample_translation(key, x)                  # 8 // 8 = 1 pixel
  assert shift.shape == (512, 2) and set(np.unique(shift)) == {-1, 0, 1}
  offset = da.sample_cutout(key, x)                      # size 4: centres 0..8
  assert offset.shape == (512, 2) and offset.min() == 0 and offset.max() == 8


@pytest.mark.parametrize("policy", ["translation", "cutout"])
def test_translation_and_cutout_keep_shape_and_values(policy):
  x = _images()
  out = da.diff_augment(x, jax.random.key(3), policy)
  assert out.shape == x.shape and out.dtype == x.dtype
  assert float(out.min()) >= -1 and float(out.max()) <= 1
  for i in range(x.shape[0]):  # every output value is 0 or a value of the same image
    assert np.isin(np.asarray(out[i]), np.append(np.asarray(x[i]), 0)).all()


# -- Policies ------------------------------------------------------------------------------------


def test_empty_policy_returns_the_input_itself():
  x = _images()
  assert da.diff_augment(x, jax.random.key(0), "") is x
  assert da.diff_augment(x, jax.random.key(0), " ") is x


def test_policy_runs_the_reference_ops_in_order():
  assert da.parse_policy("cutout, color") == ("cutout", "color")
  assert da.policy_ops("color,translation,cutout") == (
      "brightness", "saturation", "contrast", "translation", "cutout")
  x, key = _images(), jax.random.key(4)
  want = x
  for name, op_key in zip(da.policy_ops("color,translation"), jax.random.split(key, 4)):
    op = da.OPS[name]
    want = op.apply(want, op.sample(op_key, want))
  np.testing.assert_array_equal(da.diff_augment(x, key, "color,translation"), want)


@pytest.mark.parametrize("policy", ["colour", "color,", "color,,cutout", "Color"])
def test_bad_policy_is_a_one_line_config_error(policy):
  with pytest.raises(ConfigError) as info:
    da.parse_policy(policy)
  assert "\n" not in str(info.value)


# -- Gradients -------------------------------------------------------------------------------------


def _check_gradient(f, x):
  """grad f matches a central difference along a random direction; f is affine in x for a fixed
  key, so float32 with a large step only sees rounding error."""
  grad = jax.grad(f)(x)
  assert float(jnp.abs(grad).max()) > 0
  direction = jax.random.normal(jax.random.key(9), x.shape)
  eps = 0.1
  numeric = (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
  np.testing.assert_allclose(jnp.vdot(grad, direction), numeric, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("policy", POLICIES)
def test_diff_augment_gradient_matches_finite_differences(policy):
  x = _images()
  weights = jax.random.normal(jax.random.key(8), x.shape)
  _check_gradient(lambda y: jnp.vdot(weights, da.diff_augment(y, jax.random.key(5), policy)), x)


@pytest.fixture(scope="module")
def ada_jit():
  return jax.jit(ada.ada_augment)


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_ada_gradient_matches_finite_differences(ada_jit, p):
  x = _images()
  weights = jax.random.normal(jax.random.key(8), x.shape)
  f = jax.jit(lambda y, p: jnp.vdot(weights, ada.ada_augment(y, jax.random.key(6), p)))
  _check_gradient(lambda y: f(y, p), x)
  assert not np.array_equal(ada_jit(x, jax.random.key(6), p), x)


# -- ADA -------------------------------------------------------------------------------------------


def test_ada_at_p_zero_is_the_identity_and_one_compilation_serves_every_p():
  x = _images()
  assert ada.ada_augment(x, jax.random.key(0), 0.0) is x
  traces = []

  def augment(images, key, p):
    traces.append(1)
    return ada.ada_augment(images, key, p)

  f = jax.jit(augment)
  np.testing.assert_array_equal(f(x, jax.random.key(0), 0.0), x)
  assert not np.array_equal(f(x, jax.random.key(0), 1.0), x)
  f(x, jax.random.key(1), 0.3)
  assert len(traces) == 1
  # Drawn parameters gated at p = 0 leave every image unchanged bit for bit.
  params = ada.sample_ada_params(jax.random.key(2), 2)
  np.testing.assert_array_equal(ada.augment_with_params(x, params, 0.0), x)


def _only(name, value, n=2):
  """Identity parameters except transformation ``name``, drawn for every image."""
  params = ada.identity_params(n)
  values, draws = dict(params.values), dict(params.draws)
  values[name] = jnp.broadcast_to(jnp.asarray(value, jnp.float32), values[name].shape)
  draws[name] = jnp.zeros((n,))
  return ada.AdaParams(values, draws)


def test_ada_blits_are_exact():
  x = _images()
  out = ada.augment_with_params(x, _only("xflip", 1.0), 1.0)
  np.testing.assert_array_equal(out, jnp.flip(x, axis=2))
  for k in (1, 2, 3):
    out = ada.augment_with_params(x, _only("rotate90", float(k)), 1.0)
    np.testing.assert_array_equal(out, jnp.rot90(x, k, axes=(1, 2)))
  # t = (0.25, -0.125) of 8 pixels: content moves 2 right and 1 up, borders reflected.
  out = ada.augment_with_params(x, _only("xint", [0.25, -0.125]), 1.0)
  padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  np.testing.assert_array_equal(out, padded[:, 3:11, 0:8])
  # Not drawn (u = 0 is not below p = 0), or drawn above p: unchanged.
  np.testing.assert_array_equal(ada.augment_with_params(x, _only("xflip", 1.0), 0.0), x)


def test_ada_half_pixel_translation_is_bilinear():
  x = _images()
  out = ada.augment_with_params(x, _only("xfrac", [0.5 / 8, 0.0]), 1.0)
  xs = np.asarray(x)
  left = np.concatenate([xs[:, :, 1:2], xs[:, :, :-1]], axis=2)   # x - 1, reflected at 0
  np.testing.assert_allclose(out, (xs + left) / 2, atol=1e-6)


def test_ada_colour_transforms():
  x = _images()
  xs = np.asarray(x)
  mean = xs.mean(-1, keepdims=True)
  cases = [("brightness", 0.3, xs + 0.3), ("contrast", 2.0, 2 * xs),
           ("saturation", 0.0, np.broadcast_to(mean, xs.shape)), ("lumaflip", 1.0, xs - 2 * mean),
           ("hue", 2 * math.pi / 3, xs[..., [2, 0, 1]])]   # 120 degrees about grey: r->g->b->r
  for name, value, want in cases:
    out = ada.augment_with_params(x, _only(name, value), 1.0)
    np.testing.assert_allclose(out, want, atol=1e-5, err_msg=name)
  grey = x[..., :1]
  out = ada.augment_with_params(grey, _only("brightness", 0.3), 1.0)
  np.testing.assert_allclose(out, grey + 0.3, atol=1e-6)
  np.testing.assert_array_equal(ada.augment_with_params(grey, _only("hue", 1.0), 1.0), grey)


def test_rotation_probability_makes_either_rotation_probability_p():
  p = jnp.linspace(0, 1, 11)
  np.testing.assert_allclose(1 - (1 - ada.rotation_probability(p)) ** 2, p, atol=1e-6)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_ada_probability_outside_unit_interval_is_a_config_error(p):
  with pytest.raises(ConfigError):
    ada.ada_augment(_images(), jax.random.key(0), p)


def test_unknown_preset_is_a_config_error():
  with pytest.raises(ConfigError):
    ada.ada_augment(_images(), jax.random.key(0), 0.5, preset="bgcfnc")


# -- The adaptive heuristic ------------------------------------------------------------------------


def test_ada_update_follows_the_sign_of_rt_minus_target():
  step = 64 * 4 / 500_000
  up = ada.ada_update(0.5, 0.9 * 256, 256, batch_size=64)
  down = ada.ada_update(0.5, 0.1 * 256, 256, batch_size=64)
  np.testing.assert_allclose([up, down], [0.5 + step, 0.5 - step], rtol=1e-6)
  assert float(ada.ada_update(0.0, -256, 256, batch_size=64)) == 0.0
  assert float(ada.ada_update(1.0, 256, 256, batch_size=64)) == 1.0
  assert float(ada.ada_update(0.3, 0, 0, batch_size=64)) == pytest.approx(0.3)
  for rt in (1.0, 0.5, -1.0):  # r_t never exceeds a target of 1
    assert float(ada.ada_update(0.0, rt * 16, 16, target=1.0, batch_size=64)) == 0.0
  update = jax.jit(lambda p, s, c: ada.ada_update(p, s, c, batch_size=32, interval=2,
                                                  speed_images=64))
  p = jnp.float32(0)
  for _ in range(3):
    p = update(p, 16.0, 16)
  assert float(p) == 1.0  # clipped after 1 + 1 + 1


def test_ada_update_rejects_a_non_positive_batch():
  with pytest.raises(ConfigError):
    ada.ada_update(0.0, 1.0, 1, batch_size=0)
