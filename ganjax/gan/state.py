"""The training state of a GAN: one pytree holding everything a training step reads or writes."""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

Array = jax.Array
PyTree = Any


@flax.struct.dataclass
class PlayerState:
  """One player (generator or discriminator).

  Attributes:
    params: the trainable parameters (the ``'params'`` collection).
    collections: the non-trainable variable collections, e.g. ``{'batch_stats': ...}`` for batch
      norm or ``{'spectral': ...}`` for spectral-norm vectors; ``{}`` when there are none.
    opt_state: the optax state of this player's optimizer.
  """

  params: PyTree
  collections: PyTree
  opt_state: PyTree

  @property
  def variables(self) -> dict[str, PyTree]:
    """All variables in the form `flax.linen.Module.apply` takes."""
    return {"params": self.params, **self.collections}


@flax.struct.dataclass
class AdaState:
  """Adaptive discriminator augmentation (ADA): the probability p and the statistics that move it.

  Karras et al., "Training Generative Adversarial Networks with Limited Data", NeurIPS 2020: p
  is adjusted every few steps from ``r_t = E[sign(D(x_real))]`` over the discriminator's outputs
  on (augmented) real images since the last adjustment (`ganjax.diffaug.ada.ada_update`).

  Attributes:
    p: the augmentation probability the next step uses (float32 scalar in [0, 1]).
    sign_sum: sum of ``sign(D(x_real))`` since the last adjustment (float32 scalar).
    count: number of outputs in that sum (int32 scalar).
  """

  p: Array
  sign_sum: Array
  count: Array


@flax.struct.dataclass
class LeCamState:
  """Exponential moving averages of the discriminator's mean outputs, for LeCam regularization.

  Tseng et al., "Regularizing Generative Adversarial Networks under Limited Data", CVPR 2021
  (`ganjax.gan.regularizers.lecam_regularizer`).

  Attributes:
    ema_real: EMA of the batch mean of D(x) on real images (float32 scalar).
    ema_fake: EMA of the batch mean of D(G(z)) on generated images (float32 scalar).
  """

  ema_real: Array
  ema_fake: Array


@flax.struct.dataclass
class GANState:
  """The whole training state.

  Attributes:
    step: number of completed training iterations (int32 scalar).
    rng: the run's base PRNG key (raw uint32[2]); iteration ``t`` draws its randomness from
      ``jax.random.fold_in(rng, t)``, so a step's randomness is a pure function of (seed, t).
    generator: generator parameters, collections and optimizer state.
    discriminator: discriminator parameters, collections and optimizer state.
    ema_params: exponential moving average of the generator parameters, or None when the run
      keeps none.
    ada: the ADA probability and its statistics, or None when the run does not use ADA.
    lecam: the EMAs of LeCam regularization, or None when the run does not use it.

  A field that is None has no leaves, so a run without ADA or LeCam has exactly the pytree (and
  the checkpoints) of a state without these fields.
  """

  step: Array
  rng: Array
  generator: PlayerState
  discriminator: PlayerState
  ema_params: PyTree = None
  ada: AdaState | None = None
  lecam: LeCamState | None = None

  @property
  def sampling_variables(self) -> dict[str, PyTree]:
    """The generator variables to sample with: the EMA weights when the run keeps them."""
    params = self.generator.params if self.ema_params is None else self.ema_params
    return {"params": params, **self.generator.collections}


def _split_variables(variables: PyTree) -> tuple[PyTree, PyTree]:
  variables = flax.core.unfreeze(variables)
  params = variables.pop("params")
  return params, variables


def dummy_inputs(generator: nn.Module, image_shape: tuple[int, int, int],
                 batch_size: int = 2) -> tuple[Array, Array | None, Array]:
  """Latents, labels (None when unconditional) and images of the right shapes for `init`."""
  z = jnp.zeros((batch_size, generator.z_dim), jnp.float32)
  labels = jnp.zeros((batch_size,), jnp.int32) if generator.num_classes else None
  images = jnp.zeros((batch_size,) + tuple(image_shape), jnp.float32)
  return z, labels, images


def initial_ada_state(p: float) -> AdaState:
  """ADA at probability `p` with empty statistics."""
  return AdaState(p=jnp.asarray(p, jnp.float32), sign_sum=jnp.zeros((), jnp.float32),
                  count=jnp.zeros((), jnp.int32))


def initial_lecam_state() -> LeCamState:
  """Both EMAs at 0 (with a start step the first update replaces them, see the step)."""
  return LeCamState(ema_real=jnp.zeros((), jnp.float32), ema_fake=jnp.zeros((), jnp.float32))


def create_state(rng: Array, generator: nn.Module, discriminator: nn.Module,
                 g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation, *,
                 image_shape: tuple[int, int, int], use_ema: bool = False,
                 ada_p: float | None = None, use_lecam: bool = False) -> GANState:
  """Initializes both players, their optimizers and the EMA copy. Pure; `jax.jit` it.

  Args:
    rng: a PRNG key (the run's seed).
    generator, discriminator: Flax modules following the `ganjax.models` interface.
    g_tx, d_tx: the players' optax optimizers.
    image_shape: (height, width, channels) of the images.
    use_ema: whether to keep an exponential moving average of the generator parameters.
    ada_p: the initial ADA probability, or None for a run without ADA.
    use_lecam: whether to keep the EMAs of LeCam regularization.
  """
  g_key, d_key, base_key = jax.random.split(rng, 3)
  z, labels, images = dummy_inputs(generator, image_shape)
  g_params, g_collections = _split_variables(generator.init(g_key, z, labels, train=False))
  d_params, d_collections = _split_variables(
      discriminator.init(d_key, images, labels, train=False))
  return GANState(
      step=jnp.zeros((), jnp.int32),
      rng=base_key,
      generator=PlayerState(g_params, g_collections, g_tx.init(g_params)),
      discriminator=PlayerState(d_params, d_collections, d_tx.init(d_params)),
      ema_params=jax.tree.map(jnp.copy, g_params) if use_ema else None,
      ada=None if ada_p is None else initial_ada_state(ada_p),
      lecam=initial_lecam_state() if use_lecam else None,
  )
