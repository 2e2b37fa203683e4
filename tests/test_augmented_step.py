"""Differentiable augmentation (DiffAugment, ADA) and LeCam / bCR / zCR inside the training step.

Most tests share one compiled step (module fixture `aug`): a tiny DCGAN with ADA, LeCam, bCR and
zCR all on, every weight (and ADA's target) given through the step's ``hyper`` argument, so one
compilation serves every combination.
"""

import importlib.util
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import data, tasks
from ganjax.diffaug import ada as ada_lib
from ganjax.diffaug import consistency, diffaugment, pipeline
from ganjax.errors import ConfigError
from ganjax.gan import build as experiment
from ganjax.gan import regularizers, steps
from ganjax.gan.state import GANState
from ganjax.population import build as population
from tests.conftest import REPO_ROOT
from tests.tiny import assert_dcgan_generator_moved, tiny_config

# The last commit whose ganjax/gan/steps.py is the step without augmentation and regularizers
# of data-efficient training: the plain step must stay that step bit for bit.
PLAIN_STEP_COMMIT = "50667b0f09dd7065910d8a4bc9ac2b8db88979fa"

REGULARIZER_WEIGHTS = ("lecam_weight", "bcr_real_weight", "bcr_fake_weight", "zcr_dis_weight",
                       "zcr_gen_weight")


def _build(**overrides):
  config = tiny_config("dcgan", **overrides)
  dataset = data.load_dataset(config.dataset, "train", config.image_size)
  gan = experiment.build_gan(config, experiment.DataSpec(dataset.image_shape,
                                                         dataset.class_names))
  state = jax.jit(gan.init)(jax.random.PRNGKey(config.seed))
  return config, dataset, gan, state


def _batch(config, dataset, step):
  return data.training_batch(dataset, seed=0, step=step, batch_size=config.batch_size,
                             n_critic=config.n_critic)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(_leaves(a), _leaves(b)):
    np.testing.assert_array_equal(x, y)


# -- Off: the plain step, bit for bit ------------------------------------------------------------


def _plain_step_module():
  """ganjax/gan/steps.py of PLAIN_STEP_COMMIT as a module (None without git or the commit)."""
  try:
    source = subprocess.run(["git", "show", f"{PLAIN_STEP_COMMIT}:ganjax/gan/steps.py"],
                            cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    return None
  spec = importlib.util.spec_from_loader("ganjax_plain_steps", loader=None)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses look their module up
  exec(compile(source, "plain_steps.py", "exec"), module.__dict__)  # pylint: disable=exec-used
  return module


@pytest.fixture(scope="module")
def plain():
  """A tiny DCGAN with R1 and two critic updates, with the default data-efficient options."""
  config, dataset, gan, state = _build(n_critic=2, r1_penalty=1.0, ema_decay=0.9)
  return config, dataset, gan, state, jax.jit(gan.train_step())


def _three_steps(step, state, config, dataset):
  for i in range(3):
    state, metrics = step(state, _batch(config, dataset, i))
  return state, metrics


def test_default_step_is_the_step_before_augmentation_bit_for_bit(plain):
  module = _plain_step_module()
  if module is None:
    pytest.skip(f"git or commit {PLAIN_STEP_COMMIT[:7]} unavailable")
  config, dataset, gan, state, step = plain
  fields = module.StepOptions.__dataclass_fields__
  old_options = module.StepOptions(**{f: getattr(gan.options, f) for f in fields})
  old_step = jax.jit(module.make_train_step(gan.generator, gan.discriminator, gan.g_tx,
                                            gan.d_tx, old_options))
  new_state, new_metrics = _three_steps(step, state, config, dataset)
  old_state, old_metrics = _three_steps(old_step, state, config, dataset)
  _assert_same(new_state, old_state)  # same parameters, optimizer states, rng use
  _assert_same(new_metrics, new_metrics | old_metrics)
  assert set(new_metrics) - set(old_metrics) == {"d_real_sign"}


def test_disabled_options_build_the_default_step_and_state(plain):
  config, dataset, gan, state, step = plain
  disabled = dict(diffaugment="", ada_target=0.0, ada_initial_p=0.0, lecam_weight=0.0,
                  bcr_real_weight=0.0, bcr_fake_weight=0.0, zcr_dis_weight=0.0,
                  zcr_gen_weight=0.0)
  _, _, off, off_state = _build(n_critic=2, r1_penalty=1.0, ema_decay=0.9, **disabled)
  assert off.options == gan.options and not off.options.uses_ada
  assert off_state.ada is None and off_state.lecam is None
  # The state pytree (and so every checkpoint) is the one without the new fields.
  without = GANState(state.step, state.rng, state.generator, state.discriminator,
                     state.ema_params)
  assert jax.tree.structure(off_state) == jax.tree.structure(without)
  names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(off_state)]
  assert not any("ada" in n or "lecam" in n for n in names)
  _assert_same(_three_steps(jax.jit(off.train_step()), off_state, config, dataset),
               _three_steps(step, state, config, dataset))


# -- Gradients through the augmentation ------------------------------------------------------------


def _smooth_critic(images):
  """A fixed smooth function of the images per example: tanh of a random linear map."""
  weights = jax.random.normal(jax.random.key(3), images.shape[1:]) / 8
  return jnp.tanh(jnp.sum(images * weights, axis=(1, 2, 3)))


@pytest.mark.parametrize("kind", ["color", "translation", "cutout", "color,translation,cutout",
                                  "ada"])
def test_gradient_through_the_step_augmentation_matches_finite_differences(kind):
  """d/dx of a critic on augment(x): what the generator receives through D's augmentation."""
  augment = (pipeline.make_augment(use_ada=True) if kind == "ada" else
             pipeline.make_augment(kind))
  x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3), minval=-1, maxval=1)
  key = jax.random.key(11)
  value_and_grad = jax.jit(jax.value_and_grad(
      lambda y: jnp.sum(_smooth_critic(augment(y, key, jnp.float32(1.0))))))
  _, grad = value_and_grad(x)
  assert float(jnp.abs(grad).max()) > 0
  assert not np.allclose(grad, jax.grad(lambda y: jnp.sum(_smooth_critic(y)))(x))
  direction = jax.random.normal(jax.random.key(9), x.shape)
  eps = 1e-2
  numeric = (value_and_grad(x + eps * direction)[0] -
             value_and_grad(x - eps * direction)[0]) / (2 * eps)
  np.testing.assert_allclose(jnp.vdot(grad, direction), numeric, rtol=2e-3, atol=2e-4)


# -- The shared ADA + LeCam + bCR + zCR step -----------------------------------------------------

ADA_SPEED = 2000  # p moves by 8 * 4 / 2000 = 0.016 per adjustment (the paper: 500k images)


@pytest.fixture(scope="module")
def aug():
  """(config, dataset, gan, state, step): D learns fast and G slowly, so that D overfits."""
  config, dataset, gan, state = _build(
      ada_target=0.6, ada_speed_images=ADA_SPEED, lecam_weight=0.3, lecam_start_step=1,
      bcr_real_weight=1.0, bcr_fake_weight=1.0, zcr_dis_weight=1.0, zcr_gen_weight=1.0,
      **{"d_optimizer.learning_rate": 4e-3, "g_optimizer.learning_rate": 5e-5})
  return config, dataset, gan, state, jax.jit(gan.train_step())


def _hyper(ada_target=0.6, **weights):
  hyper = {name: jnp.float32(weights.get(name, 0.0)) for name in REGULARIZER_WEIGHTS}
  return hyper | {"ada_target": jnp.float32(ada_target)}


def _with_p(state, p):
  return state.replace(ada=state.ada.replace(p=jnp.float32(p)))


def test_augmentation_reaches_every_discriminator_call_and_the_generator_gradient(aug):
  config, dataset, gan, state, step = aug
  batch = _batch(config, dataset, 0)
  hyper = _hyper(ada_target=0.0)  # p stays where it is
  off, m_off = step(_with_p(state, 0.0), batch, hyper)
  on, m_on = step(_with_p(state, 1.0), batch, hyper)
  assert float(on.ada.p) == 1.0 and float(off.ada.p) == 0.0
  # Same parameters, latents and real images: D's outputs differ only by the augmentation of
  # the real images, of the generated ones, and of the generated ones in G's update.
  for name in ("d_real", "d_fake", "g_adv_loss"):
    assert float(m_on[name]) != float(m_off[name]), name
  # G's gradient flows through the augmentation: with p = 1 every image D scores in G's update
  # is augmented, and G still moves, elsewhere than at p = 0.
  assert_dcgan_generator_moved(state.generator.params, on.generator.params)
  assert any(not np.array_equal(a, b) for a, b in zip(_leaves(on.generator.params),
                                                       _leaves(off.generator.params)))
  assert all(np.isfinite(float(v)) for v in m_on.values())


def test_ada_p_rises_when_d_overfits_a_small_data_set(aug):
  config, dataset, gan, state, step = aug
  hyper, target = _hyper(), 0.6
  adjustment = config.batch_size * config.ada_interval / ADA_SPEED
  for i in range(150):
    p_before = float(state.ada.p)
    state, metrics = step(state, _batch(config, dataset, i), hyper)
    assert float(metrics["ada_p"]) == p_before
    if (i + 1) % config.ada_interval == 0:  # an adjustment: p moves by the heuristic's step
      rt = float(metrics["ada_rt"])
      expected = np.clip(p_before + np.sign(rt - target) * adjustment, 0.0, 1.0)
      np.testing.assert_allclose(float(state.ada.p), expected, atol=1e-6)
      assert int(state.ada.count) == 0 and float(state.ada.sign_sum) == 0.0
    else:
      assert float(state.ada.p) == p_before
      assert int(state.ada.count) == config.batch_size * ((i + 1) % config.ada_interval)
  assert float(state.ada.p) > 0.1


def test_ada_p_stays_exactly_zero_with_target_one(aug):
  config, dataset, gan, state, step = aug
  hyper = _hyper(ada_target=1.0)
  signs = []
  for i in range(40):
    state, metrics = step(state, _batch(config, dataset, i), hyper)
    signs.append(float(metrics["d_real_sign"]))
  assert float(state.ada.p) == 0.0
  assert max(signs) > 0  # D did call reals real: r_t > 0, but never above the target 1


def test_lecam_emas_gating_and_weight(aug):
  """lecam_start_step = 1: the EMAs copy step 0's means, decay from step 1, and the weighted
  regularizer joins D's loss from step 2 on."""
  config, dataset, gan, state, step = aug
  decay = config.lecam_ema_decay
  zero, weighted = _hyper(ada_target=0.0), _hyper(ada_target=0.0, lecam_weight=0.5)
  s0, m0 = step(state, _batch(config, dataset, 0), weighted)
  assert float(s0.lecam.ema_real) == float(m0["d_real"])
  assert float(s0.lecam.ema_fake) == float(m0["d_fake"])
  assert float(m0["d_loss"]) == float(m0["d_adv_loss"])  # step 0: not applied yet
  s1, m1 = step(s0, _batch(config, dataset, 1), weighted)
  np.testing.assert_allclose(float(s1.lecam.ema_real),
                             decay * float(m0["d_real"]) + (1 - decay) * float(m1["d_real"]),
                             rtol=1e-6)
  np.testing.assert_allclose(float(s1.lecam.ema_fake),
                             decay * float(m0["d_fake"]) + (1 - decay) * float(m1["d_fake"]),
                             rtol=1e-6)
  assert float(m1["d_loss"]) == float(m1["d_adv_loss"])  # step 1 == start step: not yet
  _, m2 = step(s1, _batch(config, dataset, 2), weighted)
  _, m2_zero = step(s1, _batch(config, dataset, 2), zero)
  assert float(m2["lecam"]) > 0 and float(m2["lecam"]) == float(m2_zero["lecam"])
  np.testing.assert_allclose(float(m2["d_loss"]) - float(m2_zero["d_loss"]),
                             0.5 * float(m2["lecam"]), rtol=1e-5)


def test_consistency_terms_enter_the_losses_with_their_weights(aug):
  config, dataset, gan, state, step = aug
  batch = _batch(config, dataset, 0)
  weights = dict(bcr_real_weight=2.0, bcr_fake_weight=3.0, zcr_dis_weight=5.0,
                 zcr_gen_weight=0.5)
  _, m0 = step(state, batch, _hyper(ada_target=0.0))
  _, m1 = step(state, batch, _hyper(ada_target=0.0, **weights))
  for name in ("bcr_real", "bcr_fake", "zcr_dis", "zcr_gen"):
    assert float(m1[name]) > 0, name
  for name in ("bcr_real", "bcr_fake", "zcr_dis"):  # the first critic update's own terms
    assert float(m0[name]) == float(m1[name]), name
  np.testing.assert_allclose(
      float(m1["d_loss"]) - float(m0["d_loss"]),
      2.0 * float(m1["bcr_real"]) + 3.0 * float(m1["bcr_fake"]) + 5.0 * float(m1["zcr_dis"]),
      rtol=1e-5)
  np.testing.assert_allclose(float(m1["g_loss"]),
                             float(m1["g_adv_loss"]) - 0.5 * float(m1["zcr_gen"]), rtol=1e-6)


# -- The regularizers and bCR's augmentation against hand-computed values ------------------------


def test_lecam_regularizer_matches_the_formula():
  d_real = np.array([1.5, -0.2, 0.3, 2.0], np.float32)
  d_fake = np.array([-1.0, 0.4, 0.1], np.float32)
  ema_real, ema_fake = np.float32(0.25), np.float32(0.2)
  expected = (np.mean(np.maximum(d_real - ema_fake, 0) ** 2) +
              np.mean(np.maximum(ema_real - d_fake, 0) ** 2))
  # (1.3^2 + 0 + 0.1^2 + 1.8^2) / 4 + (1.25^2 + 0 + 0.15^2) / 3
  np.testing.assert_allclose(expected, (1.69 + 0.01 + 3.24) / 4 + (1.5625 + 0.0225) / 3,
                             rtol=1e-6)
  got = regularizers.lecam_regularizer(d_real, d_fake, ema_real, ema_fake)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  # The EMAs are constants: gradients only flow through D's outputs.
  grad = jax.grad(regularizers.lecam_regularizer, argnums=(0, 2))(d_real, d_fake, ema_real,
                                                                   ema_fake)
  np.testing.assert_allclose(grad[0], 2 * np.maximum(d_real - ema_fake, 0) / 4, rtol=1e-6)
  assert float(grad[1]) == 0.0
  np.testing.assert_allclose(regularizers.ema_update(1.0, 3.0, 0.75), 1.5)


def test_consistency_penalty_is_the_mean_squared_difference():
  a = np.array([0.5, -1.0, 2.0], np.float32)
  b = np.array([0.0, 1.0, 2.5], np.float32)
  np.testing.assert_allclose(regularizers.consistency_penalty(a, b), (0.25 + 4.0 + 0.25) / 3)
  images = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
  np.testing.assert_allclose(regularizers.consistency_penalty(images, images + 2), 4.0)


def test_cr_augment_flips_and_translates_with_reflection():
  x = np.arange(2 * 8 * 8 * 1, dtype=np.float32).reshape(2, 8, 8, 1)
  shift = np.array([[1, -1], [-1, 0]], np.int32)   # s = 8 // 8 = 1 pixel at most
  translate = jax.jit(consistency.reflect_translation)
  out = np.asarray(translate(jnp.asarray(x), jnp.asarray(shift)))
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  for n, (dy, dx) in enumerate(shift):
    np.testing.assert_array_equal(out[n], padded[n, 1 + dy:9 + dy, 1 + dx:9 + dx])
  np.testing.assert_array_equal(out[0, 7, :, 0], x[0, 6, [1, 0, 1, 2, 3, 4, 5, 6], 0])
  flip = jax.jit(consistency.flip)
  flipped = np.asarray(flip(jnp.asarray(x), jnp.asarray([True, False])))
  np.testing.assert_array_equal(flipped[0], x[0, :, ::-1])
  np.testing.assert_array_equal(flipped[1], x[1])
  # cr_augment = translation of the flip, with the draws of its key.
  key = jax.random.key(1)  # flips the second image only
  flip_key, shift_key = jax.random.split(key)
  flags = consistency.sample_flip(flip_key, x)
  shifts = diffaugment.sample_translation(shift_key, x)
  assert np.any(flags) and np.any(shifts)
  np.testing.assert_array_equal(jax.jit(consistency.cr_augment)(jnp.asarray(x), key),
                                translate(flip(jnp.asarray(x), flags), shifts))


# -- Options, populations, configs ---------------------------------------------------------------


@pytest.mark.parametrize("overrides,message", [
    (dict(diffaugment="color", ada_target=0.6), "cannot be used together"),
    (dict(diffaugment="colour"), "unknown DiffAugment policy 'colour'"),
    (dict(ada_target=1.5), r"ada_target must be in \[0.0, 1.0\]"),
    (dict(ada_target=0.6, ada_preset="bgcx"), "unknown ADA preset"),
    (dict(ada_target=0.6, ada_interval=0), "ADA interval must be positive"),
    (dict(lecam_weight=0.1, lecam_ema_decay=1.0), r"lecam_ema_decay must be in \[0.0, 1.0\)"),
    (dict(zcr_gen_weight=0.5, zcr_sigma=0.0), "zcr_sigma must be positive"),
])
def test_bad_options_are_one_line_config_errors(overrides, message):
  config = tiny_config("dcgan", **overrides)
  with pytest.raises(ConfigError, match=message) as info:
    experiment.build_gan(config, experiment.DataSpec((8, 8, 3), ()))
  assert "\n" not in str(info.value)


def test_population_sweeps_the_new_weights_per_member():
  config = tiny_config("dcgan")
  assert set(REGULARIZER_WEIGHTS) | {"ada_target"} <= set(population.sweepable_keys(config))
  config.population.update(size=2, sweep="ada_target=0,0.6;lecam_weight=0.3,0;"
                                         "bcr_real_weight=0,10;zcr_gen_weight=0.5,0")
  pop = population.build_population(config, experiment.DataSpec((8, 8, 3), ()))
  assert pop.gan.options.uses_ada and pop.gan.options.uses_lecam  # on for every member
  np.testing.assert_allclose(pop.hyper["ada_target"], [0.0, 0.6])
  states = jax.eval_shape(pop.init, pop.rngs())
  assert states.ada.p.shape == (2,) and states.lecam.ema_real.shape == (2,)
  batch = {"image": jax.ShapeDtypeStruct((2, 1, 8, 8, 8, 3), jnp.float32),
           "label": jax.ShapeDtypeStruct((2, 1, 8), jnp.int32)}
  hyper = {k: jnp.asarray(v) for k, v in pop.hyper.items()}
  _, metrics = jax.eval_shape(pop.train_step(), states, batch, hyper)
  assert {"ada_p", "lecam", "bcr_real", "zcr_gen"} <= set(metrics)
  assert metrics["ada_p"].shape == (2,)


NEW_CONFIGS = {
    "biggan_diffaug": {"generator.width": 8, "discriminator.width": 8,
                       "generator.shared_dim": 4},
    "sngan_diffaug_lecam": {},
    "biggan_ada": {"generator.width": 8, "discriminator.width": 8, "generator.shared_dim": 4,
                   "generator.attention_resolution": 8,
                   "discriminator.attention_resolution": 4},
}


@pytest.mark.parametrize("name", sorted(NEW_CONFIGS))
def test_data_efficient_configs_build_and_trace_a_step(name):
  config = tiny_config(name, n_critic=1, **NEW_CONFIGS[name])
  gan = experiment.build_gan(config, experiment.DataSpec((8, 8, 3), tuple("abcdefghij")))
  state = jax.eval_shape(gan.init, jax.random.PRNGKey(0))
  batch = {"image": jax.ShapeDtypeStruct((1, 8, 8, 8, 3), jnp.float32),
           "label": jax.ShapeDtypeStruct((1, 8), jnp.int32)}
  _, metrics = jax.eval_shape(gan.train_step(), state, batch)
  o = gan.options
  expected = {"biggan_diffaug": ("translation,cutout", False, False),
              "sngan_diffaug_lecam": ("color,translation,cutout", False, True),
              "biggan_ada": ("", True, False)}[name]
  assert (o.diffaugment, o.uses_ada, o.uses_lecam) == expected
  assert (state.ada is not None) == o.uses_ada and (state.lecam is not None) == o.uses_lecam
  assert ("ada_p" in metrics) == o.uses_ada and ("lecam" in metrics) == o.uses_lecam


# -- Interrupted and resumed == uninterrupted -------------------------------------------------


@pytest.mark.slow
def test_ada_lecam_bcr_run_resumes_bit_exactly(tmp_path):
  """6 steps in one run == 3 steps, a checkpoint, and a second run to 6; the ADA sums are
  mid-interval at the checkpoint (interval 2) and p moves (initial p 0.5)."""
  config = tiny_config("dcgan", num_train_steps=6, checkpoint_every_steps=3,
                       log_every_steps=3, sample_every_steps=6, ada_target=0.6,
                       ada_initial_p=0.5, ada_interval=2, ada_speed_images=500,
                       lecam_weight=0.3, lecam_start_step=1, bcr_real_weight=1.0,
                       bcr_fake_weight=1.0)
  whole = tasks.train_and_evaluate(config, str(tmp_path / "whole"))
  config.num_train_steps = 3
  tasks.train_and_evaluate(config, str(tmp_path / "split"))
  config.num_train_steps = 6
  resumed = tasks.train_and_evaluate(config, str(tmp_path / "split"))
  assert int(resumed.step) == int(whole.step) == 6
  assert float(whole.ada.p) != 0.5 and float(whole.lecam.ema_real) != 0.0
  _assert_same(jax.device_get(whole), jax.device_get(resumed))
