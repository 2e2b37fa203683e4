"""Adversarial objectives as pure functions of discriminator outputs.

Every objective is a pair of functions of the discriminator's raw (pre-sigmoid) outputs:

* ``discriminator_loss(real, fake)`` -- what the discriminator (critic) minimizes, given its
  outputs on a batch of real images and a batch of generated images;
* ``generator_loss(fake)`` -- what the generator minimizes, given the discriminator's outputs on
  generated images.

All return the batch mean as a float32 scalar. Objectives are looked up by name in
`OBJECTIVES`; a config names one with ``config.loss``.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ganjax.errors import ConfigError

Array = jax.Array


class Objective(NamedTuple):
  """A GAN objective: the losses minimized by the discriminator and by the generator."""

  discriminator_loss: Callable[[Array, Array], Array]
  generator_loss: Callable[[Array], Array]


def _mean(x: Array) -> Array:
  return jnp.mean(x.astype(jnp.float32))


# -- Non-saturating and minimax (Goodfellow et al., 2014) ------------------------------------


def bce_discriminator_loss(real: Array, fake: Array) -> Array:
  """Binary cross-entropy of the discriminator, D = sigmoid(logit).

  L_D = -E[log D(x)] - E[log(1 - D(G(z)))] = E[softplus(-real)] + E[softplus(fake)].

  Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, eq. (1).
  """
  return _mean(jax.nn.softplus(-real)) + _mean(jax.nn.softplus(fake))


def nonsaturating_generator_loss(fake: Array) -> Array:
  """Non-saturating generator loss: L_G = -E[log D(G(z))] = E[softplus(-fake)].

  The heuristic of Goodfellow et al. (2014), section 3, that gives strong gradients early in
  training; used by DCGAN (Radford et al., ICLR 2016).
  """
  return _mean(jax.nn.softplus(-fake))


def minimax_generator_loss(fake: Array) -> Array:
  """Minimax (saturating) generator loss: L_G = E[log(1 - D(G(z)))] = -E[softplus(fake)].

  The generator's side of the original two-player game, Goodfellow et al. (2014), eq. (1).
  """
  return -_mean(jax.nn.softplus(fake))


# -- Wasserstein (Arjovsky et al., 2017) ------------------------------------------------------


def wasserstein_discriminator_loss(real: Array, fake: Array) -> Array:
  """Critic loss of WGAN: L_D = E[f(G(z))] - E[f(x)].

  Minimizing it maximizes E[f(x)] - E[f(G(z))], which for a 1-Lipschitz critic f estimates
  the Wasserstein-1 distance. Arjovsky, Chintala, Bottou, "Wasserstein GAN", ICML 2017, eq. (3).
  """
  return _mean(fake) - _mean(real)


def wasserstein_generator_loss(fake: Array) -> Array:
  """Generator loss of WGAN: L_G = -E[f(G(z))] (Arjovsky et al., 2017, Algorithm 1)."""
  return -_mean(fake)


# -- Hinge (Lim & Ye, 2017; Miyato et al., 2018) ----------------------------------------------


def hinge_discriminator_loss(real: Array, fake: Array) -> Array:
  """Hinge loss of the discriminator: L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))].

  Lim & Ye, "Geometric GAN", 2017; used by SNGAN (Miyato et al., ICLR 2018), SAGAN
  (Zhang et al., ICML 2019) and BigGAN (Brock et al., ICLR 2019).
  """
  return _mean(jax.nn.relu(1.0 - real)) + _mean(jax.nn.relu(1.0 + fake))


def hinge_generator_loss(fake: Array) -> Array:
  """Generator loss paired with the hinge discriminator loss: L_G = -E[D(G(z))]."""
  return -_mean(fake)


# -- Least squares (Mao et al., 2017) ---------------------------------------------------------


def least_squares_discriminator_loss(real: Array, fake: Array) -> Array:
  """LSGAN discriminator loss with targets a=0 (fake), b=1 (real).

  L_D = 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2].
  Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017, eq. (9).
  """
  return 0.5 * _mean(jnp.square(real - 1.0)) + 0.5 * _mean(jnp.square(fake))


def least_squares_generator_loss(fake: Array) -> Array:
  """LSGAN generator loss with target c=1: L_G = 1/2 E[(D(G(z)) - 1)^2] (Mao et al., eq. 9)."""
  return 0.5 * _mean(jnp.square(fake - 1.0))


OBJECTIVES: dict[str, Objective] = {
    "nonsaturating": Objective(bce_discriminator_loss, nonsaturating_generator_loss),
    "minimax": Objective(bce_discriminator_loss, minimax_generator_loss),
    "wasserstein": Objective(wasserstein_discriminator_loss, wasserstein_generator_loss),
    "hinge": Objective(hinge_discriminator_loss, hinge_generator_loss),
    "least_squares": Objective(least_squares_discriminator_loss, least_squares_generator_loss),
}


def smoothed_bce_discriminator_loss(real: Array, fake: Array, smoothing: float) -> Array:
  """BCE discriminator loss with one-sided label smoothing: real targets 1 - s, fake targets 0.

  L_D = E[(1 - s) softplus(-real) + s softplus(real)] + E[softplus(fake)], i.e. the cross-entropy
  of sigmoid(real) against the target 1 - s. Only the real targets are smoothed, so D's optimum
  is (1 - s) p_data / (p_data + p_model) and no incentive appears where p_data = 0. Salimans et
  al., "Improved Techniques for Training GANs", NeurIPS 2016, section 3.4.
  """
  s = smoothing
  return (_mean((1.0 - s) * jax.nn.softplus(-real) + s * jax.nn.softplus(real)) +
          _mean(jax.nn.softplus(fake)))


def get_objective(name: str, label_smoothing: float = 0.0) -> Objective:
  """Returns the objective registered as `name`, or raises a ConfigError listing the choices.

  `label_smoothing` s > 0 applies one-sided label smoothing to the discriminator loss; only the
  objectives with a binary cross-entropy discriminator loss take it.
  """
  try:
    objective = OBJECTIVES[name]
  except KeyError:
    raise ConfigError(
        f"unknown loss {name!r}; choose one of {sorted(OBJECTIVES)}") from None
  if not label_smoothing:
    return objective
  if not 0.0 < label_smoothing < 1.0:
    raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
  if objective.discriminator_loss is not bce_discriminator_loss:
    bce = sorted(k for k, v in OBJECTIVES.items()
                 if v.discriminator_loss is bce_discriminator_loss)
    raise ConfigError(f"label_smoothing applies to the cross-entropy losses {bce}, not to "
                      f"loss {name!r}")
  return objective._replace(discriminator_loss=functools.partial(
      smoothed_bce_discriminator_loss, smoothing=label_smoothing))


def classification_loss(logits: Array, labels: Array, label_smoothing: float = 0.0) -> Array:
  """Mean softmax cross-entropy of class logits against integer labels.

  The auxiliary-classifier term of ACGAN (Odena et al., "Conditional Image Synthesis with
  Auxiliary Classifier GANs", ICML 2017, eq. (2)), L_C = E[-log P(C = c | X)].
  """
  num_classes = logits.shape[-1]
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
  return _mean(optax.softmax_cross_entropy(logits.astype(jnp.float32), targets))
