"""Regularizers and weight constraints of the discriminator (critic).

Penalties are pure functions of a scalar-per-example critic ``critic(images) -> [B]`` and
images; the data-efficient regularizers (LeCam, consistency) are pure functions of the
discriminator's outputs (and of the EMAs the training state keeps); constraints are projections
applied to the parameters after each optimizer update. The training step
(`ganjax.gan.steps`) decides which images each one sees.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from ganjax.errors import ConfigError

Array = jax.Array
Critic = Callable[[Array], Array]
Params = Any


def _at_least_f32(x: Array) -> Array:
  """Low-precision (bfloat16) values are promoted to float32; float64 stays float64."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _per_example_input_gradients(critic: Critic, images: Array) -> Array:
  """d critic(x)_i / d x_i for every example i (examples are independent in the critic)."""
  return jax.grad(lambda x: jnp.sum(_at_least_f32(critic(x))))(images)


def _per_example_norm(grads: Array) -> Array:
  flat = _at_least_f32(grads.reshape(grads.shape[0], -1))
  return optax.safe_norm(flat, 0.0, axis=1)


def interpolates(real: Array, fake: Array, rng: Array) -> Array:
  """Random points on straight lines between real and generated samples.

  x_hat = eps * x + (1 - eps) * G(z), with eps ~ U[0, 1] drawn once per example.
  """
  eps = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic: Critic, real: Array, fake: Array, rng: Array,
                     target: float = 1.0) -> Array:
  """The WGAN-GP two-sided gradient penalty, without its weight lambda.

  GP = E_{x_hat}[(||grad_{x_hat} D(x_hat)||_2 - target)^2] on the random interpolates
  x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1].

  Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017, Algorithm 1
  (the paper uses lambda = 10, target = 1). The gradient is taken with `jax.grad`, so the
  critic's update differentiates through it (double backward).
  """
  x_hat = interpolates(real, fake, rng)
  norms = _per_example_norm(_per_example_input_gradients(critic, x_hat))
  return jnp.mean(jnp.square(norms - target))


def r1_penalty(critic: Critic, real: Array) -> Array:
  """The R1 penalty on real data, without its weight gamma / 2.

  R1 = E_x[||grad_x D(x)||_2^2]. Mescheder, Geiger, Nowozin, "Which Training Methods for GANs
  do actually Converge?", ICML 2018, eq. (9); the critic minimizes gamma / 2 * R1.
  """
  grads = _at_least_f32(_per_example_input_gradients(critic, real))
  return jnp.mean(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1))


def ema_update(average: Array, value: Array, decay: Array | float) -> Array:
  """One step of an exponential moving average: ``decay * average + (1 - decay) * value``."""
  return decay * average + (1.0 - decay) * value


def lecam_regularizer(d_real: Array, d_fake: Array, ema_real: Array, ema_fake: Array) -> Array:
  """The LeCam regularizer of the discriminator, without its weight lambda.

  R_LC = E_x[relu(D(x) - alpha_F)^2] + E_z[relu(alpha_R - D(G(z)))^2], where alpha_R and
  alpha_F are exponential moving averages of the mean outputs of D on real and on generated
  images. Tseng, Jiang, Liu, Yang, Yang, "Regularizing Generative Adversarial Networks under
  Limited Data", CVPR 2021 (R_LC); the one-sided (relu) form is the reference implementation's
  (google/lecam-gan ``lecam_reg``, the same in PyTorch-StudioGAN's ``losses.lecam_reg``), which
  penalizes only real outputs above the fake EMA and generated outputs below the real EMA. The
  EMAs are constants here (the step updates them from the same batch just before, as both
  references do); gradients flow through ``d_real`` and ``d_fake``.

  Args:
    d_real, d_fake: D's raw outputs on real and generated images, [B].
    ema_real, ema_fake: the EMAs alpha_R and alpha_F (scalars).
  """
  ema_real = jax.lax.stop_gradient(ema_real)
  ema_fake = jax.lax.stop_gradient(ema_fake)
  real = _at_least_f32(d_real)
  fake = _at_least_f32(d_fake)
  return (jnp.mean(jnp.square(jax.nn.relu(real - ema_fake))) +
          jnp.mean(jnp.square(jax.nn.relu(ema_real - fake))))


def consistency_penalty(outputs: Array, other_outputs: Array) -> Array:
  """The mean squared difference of two outputs for the same examples, E[(a - b)^2].

  The term of consistency regularization (Zhang, Zhang, Odena, Lee, "Consistency
  Regularization for Generative Adversarial Networks", ICLR 2020) and of its balanced and latent
  forms (Zhao, Singh, Lee, Zhang, Odena, Zhang, "Improved Consistency Regularization for GANs",
  AAAI 2021, Algorithms 1 and 2):

  * bCR: lambda_real E||D(x) - D(T(x))||^2 + lambda_fake E||D(G(z)) - D(T(G(z)))||^2, T a flip
    and translation (`ganjax.diffaug.cr_augment`), in the discriminator's loss;
  * zCR: lambda_dis E||D(G(z)) - D(G(z + dz))||^2 in the discriminator's loss and
    -lambda_gen E||G(z) - G(z + dz)||^2 in the generator's, dz ~ N(0, sigma_noise^2 I).

  Computed as PyTorch-StudioGAN does (``torch.nn.MSELoss``): the mean over every element, i.e.
  over the batch for D's outputs and over all pixels for G's images.
  """
  diff = _at_least_f32(outputs) - _at_least_f32(other_outputs)
  return jnp.mean(jnp.square(diff))


def weight_clipping(clip_value: float) -> Callable[[Params], Params]:
  """The WGAN weight constraint: every parameter is projected onto the box [-c, c].

  Applied to the critic's parameters after every critic update (Arjovsky et al., "Wasserstein
  GAN", ICML 2017, Algorithm 1, line 7; the paper uses c = 0.01). It is optax's Euclidean
  projection onto the box, `optax.projections.projection_box`.
  """
  if clip_value <= 0:
    raise ConfigError(f"weight clipping needs a positive clip value, got {clip_value}")

  def project(params: Params) -> Params:
    # Bounds as trees: optax's projection_box maps over them together with the parameters.
    lower = jax.tree.map(lambda p: jnp.full_like(p, -clip_value), params)
    upper = jax.tree.map(lambda p: jnp.full_like(p, clip_value), params)
    return optax.projections.projection_box(params, lower, upper)

  return project
