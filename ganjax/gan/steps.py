"""Pure training and sampling steps, built by factories.

`make_train_step` returns ``train_step(state, batch) -> (state, metrics)``: ``n_critic``
discriminator (critic) updates, each on its own real batch, then one generator update and the
EMA of the generator weights. It reads no globals, files or configs, so it can be `jax.jit`-ed
over a device mesh, `jax.vmap`-ed over a population of runs, or called from research code.

A batch is ``{'image': float32 [n_critic, B, H, W, C] in [-1, 1], 'label': int32
[n_critic, B]}``; the leading axis holds one real batch per critic update.

The scalar weights named in `HYPERPARAMETERS` are Python floats of `StepOptions`, folded into
the compiled step; ``train_step(state, batch, hyper)`` takes any of them as (traced) arrays
instead, so that `jax.vmap` can give every member of a population its own value
(`ganjax.population`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ganjax.gan import losses, regularizers
from ganjax.models.spectral import SPECTRAL
from ganjax.gan.state import GANState, PlayerState

Array = jax.Array
Batch = dict[str, Array]
Metrics = dict[str, Array]
PyTree = Any

# StepOptions fields that train_step also takes as arrays in its `hyper` argument.
HYPERPARAMETERS = ("gradient_penalty", "r1_penalty", "aux_classifier_weight", "ema_decay")


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """Static choices of a training step (everything besides the models and optimizers).

  Attributes:
    objective: the adversarial objective (`ganjax.gan.losses.OBJECTIVES`).
    n_critic: discriminator updates per generator update.
    gradient_penalty: weight lambda of the WGAN-GP penalty (0 = off).
    r1_penalty: weight gamma of the R1 penalty, applied as gamma / 2 * R1 (0 = off).
    aux_classifier_weight: weight of the auxiliary-classifier cross-entropy in both players'
      losses (ACGAN; 0 = off). Needs a discriminator with ``'class_logits'``.
    aux_classifier_on_fake: whether the discriminator's class loss also covers generated
      images with their sampled labels (Odena et al., 2017: D maximizes L_S + L_C over real and
      fake) or only real ones (PyTorch-StudioGAN's ACGAN). The generator's class loss is always
      on its own images.
    d_projection: projection of the discriminator parameters after each of its updates (e.g.
      `ganjax.gan.regularizers.weight_clipping`), or None.
    ema_decay: decay of the EMA of the generator weights (used when the state keeps one).
    ema_start_step: before this step the EMA copies the weights.
    unroll_critic: write the critic updates out one after the other (a Python loop over the
      static n_critic) instead of a `lax.scan`. On the CPU XLA picks fast convolution kernels
      only in the straight-line form (a scan, even with ``unroll=True``, kept convolutions on
      a slow path: 10x slower steps on a CPU); the scan compiles faster
      for large n_critic.
    batch_sharding: a sharding for arrays whose leading axis is the batch (latents, sampled
      labels), applied as a constraint so generated batches stay split over devices; None on
      one device.
  """

  objective: losses.Objective = losses.OBJECTIVES["nonsaturating"]
  n_critic: int = 1
  gradient_penalty: float = 0.0
  r1_penalty: float = 0.0
  aux_classifier_weight: float = 0.0
  aux_classifier_on_fake: bool = True
  d_projection: Callable[[PyTree], PyTree] | None = None
  ema_decay: float = 0.999
  ema_start_step: int = 0
  unroll_critic: bool = True
  batch_sharding: jax.sharding.Sharding | None = None


def apply_model(module: nn.Module, params: PyTree, collections: PyTree, *args: Any,
                train: bool, rng: Array | None = None,
                update_spectral: bool = False) -> tuple[Any, PyTree]:
  """Applies a module, returning (output, updated non-trainable collections).

  In training mode the non-trainable collections (batch statistics) are mutable and come back
  updated; the spectral-norm vectors (``'spectral'``) only with `update_spectral`, which the
  step sets on the first training-mode application of a player per update of that player (one
  power iteration per update; see `ganjax.models.spectral`). `rng` feeds the ``'dropout'``
  stream.
  """
  rngs = {"dropout": rng} if rng is not None else None
  variables = {"params": params, **collections}
  mutable = [c for c in collections if c != SPECTRAL or update_spectral] if train else []
  if mutable:
    out, updates = module.apply(variables, *args, train=True, mutable=mutable, rngs=rngs)
    return out, {**collections, **updates}
  return module.apply(variables, *args, train=train, rngs=rngs), collections


def _constrain(x: Array | None, sharding: jax.sharding.Sharding | None) -> Array | None:
  if x is None or sharding is None:
    return x
  return jax.lax.with_sharding_constraint(x, sharding)


def sample_latents(rng: Array, generator: nn.Module, batch_size: int,
                   sharding: jax.sharding.Sharding | None = None) -> tuple[Array, Array | None]:
  """z ~ N(0, I) of shape [B, z_dim], and class labels ~ U{0..K-1} when G is conditional."""
  z_key, y_key = jax.random.split(rng)
  z = jax.random.normal(z_key, (batch_size, generator.z_dim), jnp.float32)
  labels = None
  if generator.num_classes:
    labels = jax.random.randint(y_key, (batch_size,), 0, generator.num_classes, jnp.int32)
  return _constrain(z, sharding), _constrain(labels, sharding)


def _apply_updates(player: PlayerState, grads: PyTree, tx: optax.GradientTransformation,
                   collections: PyTree,
                   projection: Callable[[PyTree], PyTree] | None = None) -> PlayerState:
  updates, opt_state = tx.update(grads, player.opt_state, player.params)
  params = optax.apply_updates(player.params, updates)
  if projection is not None:
    params = projection(params)
  return PlayerState(params=params, collections=collections, opt_state=opt_state)


def _class_accuracy(logits: Array, labels: Array) -> Array:
  return jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))


def make_train_step(generator: nn.Module, discriminator: nn.Module,
                    g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                    options: StepOptions = StepOptions()
                    ) -> Callable[..., tuple[GANState, Metrics]]:
  """Builds the pure function ``train_step(state, batch, hyper=None) -> (state, metrics)``.

  `hyper` maps names of `HYPERPARAMETERS` to scalar arrays that replace the options' values (a
  penalty named there is computed even when its option is 0).

  Metrics (float32 scalars; discriminator metrics are means over the critic updates):
  ``d_loss`` (total critic loss), ``d_adv_loss``, ``g_loss``, ``d_real`` / ``d_fake`` (mean raw
  D output on real / generated images), ``wasserstein`` (d_real - d_fake, the critic's
  Wasserstein estimate), ``gradient_penalty`` / ``r1_penalty`` when on, and with an auxiliary
  classifier ``d_class_loss``, ``g_class_loss``, ``d_real_class_acc``.
  """
  o = options
  objective = o.objective

  def weight(hyper, name):  # a traced per-member value, or the static option
    return hyper[name] if name in hyper else getattr(o, name)

  def critic_loss(d_params, d_collections, real, real_labels, fake, fake_labels, rng, hyper):
    rng_real, rng_fake, rng_gp = jax.random.split(rng, 3)
    real_out, d_collections = apply_model(discriminator, d_params, d_collections, real,
                                          real_labels, train=True, rng=rng_real,
                                          update_spectral=True)
    fake_out, d_collections = apply_model(discriminator, d_params, d_collections, fake,
                                          fake_labels, train=True, rng=rng_fake)
    adv_loss = objective.discriminator_loss(real_out["adv"], fake_out["adv"])
    d_real, d_fake = jnp.mean(real_out["adv"]), jnp.mean(fake_out["adv"])
    metrics = {"d_adv_loss": adv_loss, "d_real": d_real, "d_fake": d_fake,
               "wasserstein": d_real - d_fake}
    loss = adv_loss

    def critic(x):  # penalties: the critic's raw output; its collection updates are dropped
      return apply_model(discriminator, d_params, d_collections, x, real_labels, train=True,
                         rng=rng_gp)[0]["adv"]

    if o.gradient_penalty or "gradient_penalty" in hyper:
      gp = regularizers.gradient_penalty(critic, real, fake, rng_gp)
      loss += weight(hyper, "gradient_penalty") * gp
      metrics["gradient_penalty"] = gp
    if o.r1_penalty or "r1_penalty" in hyper:
      r1 = regularizers.r1_penalty(critic, real)
      loss += 0.5 * weight(hyper, "r1_penalty") * r1
      metrics["r1_penalty"] = r1
    if o.aux_classifier_weight or "aux_classifier_weight" in hyper:
      class_loss = losses.classification_loss(real_out["class_logits"], real_labels)
      if o.aux_classifier_on_fake:
        class_loss += losses.classification_loss(fake_out["class_logits"], fake_labels)
      loss += weight(hyper, "aux_classifier_weight") * class_loss
      metrics["d_class_loss"] = class_loss
      metrics["d_real_class_acc"] = _class_accuracy(real_out["class_logits"], real_labels)
    metrics["d_loss"] = loss
    return loss, (d_collections, metrics)

  def critic_update(g_params, step_rng, hyper, carry, inputs):
    d_player, g_collections = carry
    real, real_labels, index = inputs
    z_key, loss_key = jax.random.split(jax.random.fold_in(step_rng, index))
    z, fake_labels = sample_latents(z_key, generator, real.shape[0], o.batch_sharding)
    fake, g_collections = apply_model(generator, g_params, g_collections, z, fake_labels,
                                      train=True)  # G's spectral vectors move in its update
    grads, (d_collections, metrics) = jax.grad(critic_loss, has_aux=True)(
        d_player.params, d_player.collections, real, real_labels,
        jax.lax.stop_gradient(fake), fake_labels, loss_key, hyper)
    d_player = _apply_updates(d_player, grads, d_tx, d_collections, o.d_projection)
    return (d_player, g_collections), metrics

  def generator_loss(g_params, g_collections, d_player, batch_size, rng, hyper):
    z_key, d_key = jax.random.split(rng)
    z, fake_labels = sample_latents(z_key, generator, batch_size, o.batch_sharding)
    fake, g_collections = apply_model(generator, g_params, g_collections, z, fake_labels,
                                      train=True, update_spectral=True)
    fake_out, _ = apply_model(discriminator, d_player.params, d_player.collections, fake,
                              fake_labels, train=True, rng=d_key)
    loss = objective.generator_loss(fake_out["adv"])
    metrics = {"g_adv_loss": loss}
    if o.aux_classifier_weight or "aux_classifier_weight" in hyper:
      class_loss = losses.classification_loss(fake_out["class_logits"], fake_labels)
      loss += weight(hyper, "aux_classifier_weight") * class_loss
      metrics["g_class_loss"] = class_loss
    metrics["g_loss"] = loss
    return loss, (g_collections, metrics)

  def update_ema(ema_params, g_params, step, hyper):
    if ema_params is None:
      return None
    decay = jnp.where(step >= o.ema_start_step, weight(hyper, "ema_decay"), 0.0)
    return optax.incremental_update(g_params, ema_params, step_size=1.0 - decay)

  def train_step(state: GANState, batch: Batch,
                 hyper: dict[str, Array] | None = None) -> tuple[GANState, Metrics]:
    hyper = {} if hyper is None else hyper
    unknown = sorted(set(hyper) - set(HYPERPARAMETERS))
    if unknown:
      raise ValueError(f"hyper has {unknown}; train_step takes {list(HYPERPARAMETERS)}")
    images, labels = batch["image"], batch["label"]
    if images.shape[0] != o.n_critic:
      raise ValueError(f"batch has {images.shape[0]} critic batches, the step needs "
                       f"n_critic={o.n_critic}")
    step_rng = jax.random.fold_in(state.rng, state.step)
    critic_rng, g_rng = jax.random.split(step_rng)
    g_player = state.generator
    update = functools.partial(critic_update, g_player.params, critic_rng, hyper)
    carry = (state.discriminator, g_player.collections)
    if o.unroll_critic:
      per_update = []
      for i in range(o.n_critic):
        carry, m = update(carry, (images[i], labels[i], jnp.asarray(i)))
        per_update.append(m)
      d_metrics = jax.tree.map(lambda *v: jnp.stack(v), *per_update)
    else:
      carry, d_metrics = jax.lax.scan(update, carry,
                                      (images, labels, jnp.arange(o.n_critic)))
    d_player, g_collections = carry
    grads, (g_collections, g_metrics) = jax.grad(generator_loss, has_aux=True)(
        g_player.params, g_collections, d_player, images.shape[1], g_rng, hyper)
    g_player = _apply_updates(g_player, grads, g_tx, g_collections)
    new_state = state.replace(
        step=state.step + 1,
        generator=g_player,
        discriminator=d_player,
        ema_params=update_ema(state.ema_params, g_player.params, state.step, hyper))
    metrics = {k: jnp.mean(v) for k, v in d_metrics.items()} | g_metrics
    return new_state, metrics

  return train_step


def make_sample_fn(generator: nn.Module) -> Callable[[PyTree, Array, Array | None], Array]:
  """Builds ``sample(variables, z, labels) -> images``: the generator in inference mode.

  `variables` is e.g. `GANState.sampling_variables` (EMA weights when kept); batch norm uses its
  running statistics and spectral-norm vectors are not updated.
  """

  def sample(variables: PyTree, z: Array, labels: Array | None = None) -> Array:
    return generator.apply(variables, z, labels, train=False)

  return sample
