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

Data-efficient training (all off by default; off, the step is the plain one bit for bit and
draws no extra random numbers):

* differentiable augmentation of every image right before the discriminator, real and
  generated, in the critic updates and in the generator update (whose gradient flows through
  it): DiffAugment with a fixed policy, or ADA at the probability p the state keeps and adjusts
  (`ganjax.diffaug`);
* LeCam regularization with EMAs of D's outputs kept in the state, balanced consistency
  regularization (bCR) and latent consistency regularization (zCR)
  (`ganjax.gan.regularizers`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ganjax.diffaug import ada as ada_lib
from ganjax.diffaug import consistency, pipeline
from ganjax.errors import ConfigError
from ganjax.gan import losses, regularizers
from ganjax.models.spectral import SPECTRAL
from ganjax.gan.state import AdaState, GANState, LeCamState, PlayerState

Array = jax.Array
Batch = dict[str, Array]
Metrics = dict[str, Array]
PyTree = Any

# StepOptions fields that train_step also takes as arrays in its `hyper` argument.
HYPERPARAMETERS = ("gradient_penalty", "r1_penalty", "aux_classifier_weight", "ema_decay",
                   "ada_target", "lecam_weight", "bcr_real_weight", "bcr_fake_weight",
                   "zcr_dis_weight", "zcr_gen_weight")

# fold_in data of the keys of the data-efficient parts, derived only when they are on (the other
# keys of the step are the same with or without them).
_AUGMENT_STREAM = 0xA06
_CR_STREAM = 0xC12
_ZCR_STREAM = 0x2C2


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
      static n_critic) instead of a `lax.scan` (of G's samples for all updates, then of the D
      updates). With XLA's convolutions on a CPU only the straight-line form gets fast kernels
      (in a scan, even with ``unroll=True``, they stay on a slow path: 10-50x slower steps);
      with oneDNN's the scan runs as fast and compiles 2-3x faster
      (`ganjax.gan.build.critic_unrolled` chooses when the config leaves it open).
    batch_sharding: a sharding for arrays whose leading axis is the batch (latents, sampled
      labels), applied as a constraint so generated batches stay split over devices; None on
      one device.
    diffaugment: DiffAugment policy applied to every image D sees (``"color,translation,cutout"``;
      ``""`` = none). Zhao et al., "Differentiable Augmentation for Data-Efficient GAN
      Training", NeurIPS 2020.
    ada_target: ADA's target r_t of E[sign(D(x_real))] (0 = p never adapts; 0.6 in Karras et
      al., NeurIPS 2020). ADA is on when this or `ada_initial_p` is positive.
    ada_initial_p: ADA's probability in the initial state (with ada_target 0 it stays fixed).
    ada_interval: steps between adjustments of p.
    ada_speed_images: real images D scores for p to move by 1 (the references' ada_kimg *
      1000; 500k): every adjustment moves p by ``n_critic * batch * ada_interval /
      ada_speed_images``, the number of real outputs in its r_t.
    ada_preset: ADA's pipeline (`ganjax.diffaug.ada.PRESETS`).
    lecam_weight: weight lambda of the LeCam regularizer (0 = off).
    lecam_ema_decay: decay of the EMAs of D's mean outputs.
    lecam_start_step: before this step the EMAs take each new value (decay 0); the
      regularizer applies after it (StudioGAN's lecam_ema_start_iter).
    bcr_real_weight, bcr_fake_weight: bCR's lambda_real and lambda_fake (0 = off).
    zcr_dis_weight, zcr_gen_weight: zCR's lambda_dis and lambda_gen (0 = off).
    zcr_sigma: standard deviation sigma_noise of zCR's latent perturbation.
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
  diffaugment: str = ""
  ada_target: float = 0.0
  ada_initial_p: float = 0.0
  ada_interval: int = 4
  ada_speed_images: int = 500_000
  ada_preset: str = "bgc"
  lecam_weight: float = 0.0
  lecam_ema_decay: float = 0.99
  lecam_start_step: int = 0
  bcr_real_weight: float = 0.0
  bcr_fake_weight: float = 0.0
  zcr_dis_weight: float = 0.0
  zcr_gen_weight: float = 0.0
  zcr_sigma: float = 0.05

  def __post_init__(self):
    check_data_efficient_options(self)

  @property
  def uses_ada(self) -> bool:
    """Whether the state keeps ADA's p (`ganjax.gan.state.AdaState`)."""
    return self.ada_target > 0 or self.ada_initial_p > 0

  @property
  def uses_lecam(self) -> bool:
    """Whether the state keeps LeCam's EMAs (`ganjax.gan.state.LeCamState`)."""
    return self.lecam_weight > 0


def _check_range(name: str, value: float, low: float, high: float, high_open: bool = False
                 ) -> None:
  if not low <= value <= high or (high_open and value == high):
    bracket = ")" if high_open else "]"
    raise ConfigError(f"{name} must be in [{low}, {high}{bracket}, got {value}")


def check_data_efficient_options(options: StepOptions) -> None:
  """Raises a one-line ConfigError for an unusable augmentation or regularizer option."""
  pipeline.make_augment(options.diffaugment, options.uses_ada, options.ada_preset)
  _check_range("ada_target", options.ada_target, 0.0, 1.0)
  _check_range("ada_initial_p", options.ada_initial_p, 0.0, 1.0)
  _check_range("lecam_ema_decay", options.lecam_ema_decay, 0.0, 1.0, high_open=True)
  if options.uses_ada:
    ada_lib.ada_adjustment(1, options.ada_interval, options.ada_speed_images)
  if (options.zcr_dis_weight or options.zcr_gen_weight) and options.zcr_sigma <= 0:
    raise ConfigError(f"zcr_sigma must be positive, got {options.zcr_sigma}")


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


class _CriticBatch(NamedTuple):
  """The images of one critic update (generated ones without gradient)."""

  real: Array
  real_labels: Array
  fake: Array
  fake_labels: Array | None
  fake_eps: Array | None  # G(z + dz) for zCR, or None


class _Carried(NamedTuple):
  """What the step threads through its critic updates besides the players."""

  step: Array
  ada_p: Array | None
  lecam: LeCamState | None


def _mean_f32(x: Array) -> Array:
  return jnp.mean(x.astype(jnp.float32))


def make_train_step(generator: nn.Module, discriminator: nn.Module,
                    g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                    options: StepOptions = StepOptions()
                    ) -> Callable[..., tuple[GANState, Metrics]]:
  """Builds the pure function ``train_step(state, batch, hyper=None) -> (state, metrics)``.

  `hyper` maps names of `HYPERPARAMETERS` to scalar arrays that replace the options' values (a
  penalty named there is computed even when its option is 0). ``ada_target`` and
  ``lecam_weight`` take effect only in a step built with ADA / LeCam on, since those keep state
  (`StepOptions.uses_ada`, `StepOptions.uses_lecam`); a hyper ``ada_target`` of 0 keeps p fixed.

  Augmentation (`StepOptions.diffaugment` or ADA) is applied to the images D scores in the
  adversarial terms: real and generated images of every critic update (independent draws) and
  the generated images of the generator update, whose gradient flows through it. The WGAN-GP
  penalty sees unaugmented interpolates of unaugmented images (PyTorch-StudioGAN's
  ``cal_grad_penalty``); R1 is the gradient with respect to the unaugmented real images of D on
  their augmented versions, with the draw of the adversarial term (stylegan2-ada's and
  StudioGAN's ``r1``). bCR compares D's output on what it saw in the adversarial term with its
  output on T of the unaugmented images, and zCR D's output on the generated images it saw with
  its output on the unaugmented G(z + dz), as StudioGAN does. The regularizers' extra passes of
  D (and zCR's of G) run in training mode and their collection updates are dropped, like the
  penalties'.

  ADA: p is fixed during a step; after it the step's signs of D on the augmented real images
  join the running sums, and every ``ada_interval`` steps (when ``(step + 1) % ada_interval ==
  0``) p moves by `ganjax.diffaug.ada.ada_update` and the sums restart. LeCam: before each
  critic update's loss the EMAs take that update's mean outputs (decay 0 before
  ``lecam_start_step``), and the regularizer counts once ``step > lecam_start_step``, as in
  StudioGAN and google/lecam-gan.

  Metrics (float32 scalars; discriminator metrics are means over the critic updates):
  ``d_loss`` (total critic loss), ``d_adv_loss``, ``g_loss``, ``d_real`` / ``d_fake`` (mean raw
  D output on real / generated images), ``wasserstein`` (d_real - d_fake, the critic's
  Wasserstein estimate), ``d_real_sign`` (mean sign of D on the real images it saw),
  ``gradient_penalty`` / ``r1_penalty`` when on, with an auxiliary classifier
  ``d_class_loss``, ``g_class_loss``, ``d_real_class_acc``; with ADA ``ada_p`` (the p of this
  step) and ``ada_rt`` (r_t over the current interval up to this step); with LeCam ``lecam``
  (R_LC, unweighted), ``lecam_ema_real``, ``lecam_ema_fake``; ``bcr_real`` / ``bcr_fake`` /
  ``zcr_dis`` / ``zcr_gen`` (the unweighted consistency terms) when on.
  """
  o = options
  objective = o.objective
  augment = pipeline.make_augment(o.diffaugment, o.uses_ada, o.ada_preset)

  def weight(hyper, name):  # a traced per-member value, or the static option
    return hyper[name] if name in hyper else getattr(o, name)

  def on(hyper, name):  # a term is computed when its option is set or `hyper` names it
    return bool(getattr(o, name)) or name in hyper

  def seen(images, key, ada_p):  # what D sees of `images`: augmented when augmentation is on
    return images if augment is None else augment(images, key, ada_p)

  def d_adv(d_params, d_collections, images, labels, rng):  # D's output, collections dropped
    return apply_model(discriminator, d_params, d_collections, images, labels, train=True,
                       rng=rng)[0]["adv"]

  def perturbed(g_params, g_collections, z, labels, key):  # G(z + dz) of zCR
    noise = jax.random.normal(jax.random.fold_in(key, _ZCR_STREAM), z.shape, z.dtype)
    return apply_model(generator, g_params, g_collections, z + o.zcr_sigma * noise, labels,
                       train=True)[0]

  def lecam_term(real_adv, fake_adv, carried, hyper):
    """(weighted R_LC, the updated EMAs, metrics)."""
    decay = jnp.where(carried.step < o.lecam_start_step, 0.0, o.lecam_ema_decay)
    lecam = LeCamState(
        ema_real=regularizers.ema_update(carried.lecam.ema_real,
                                         jax.lax.stop_gradient(_mean_f32(real_adv)), decay),
        ema_fake=regularizers.ema_update(carried.lecam.ema_fake,
                                         jax.lax.stop_gradient(_mean_f32(fake_adv)), decay))
    reg = regularizers.lecam_regularizer(real_adv, fake_adv, lecam.ema_real, lecam.ema_fake)
    active = carried.step > o.lecam_start_step
    term = jnp.where(active, weight(hyper, "lecam_weight") * reg, 0.0)
    return term, lecam, {"lecam": reg, "lecam_ema_real": lecam.ema_real,
                         "lecam_ema_fake": lecam.ema_fake}

  def consistency_terms(d_adv_fn, batch, real_adv, fake_adv, rng, hyper):
    """(weighted bCR + zCR terms of D's loss, metrics)."""
    total, metrics = 0.0, {}
    if not (on(hyper, "bcr_real_weight") or on(hyper, "bcr_fake_weight") or
            batch.fake_eps is not None):
      return total, metrics
    keys = jax.random.split(jax.random.fold_in(rng, _CR_STREAM), 5)
    for name, images, labels, outputs, k in (
        ("bcr_real", batch.real, batch.real_labels, real_adv, 0),
        ("bcr_fake", batch.fake, batch.fake_labels, fake_adv, 2)):
      if on(hyper, name + "_weight"):
        other = d_adv_fn(consistency.cr_augment(images, keys[k]), labels, keys[k + 1])
        metrics[name] = regularizers.consistency_penalty(outputs, other)
        total += weight(hyper, name + "_weight") * metrics[name]
    if batch.fake_eps is not None:
      other = d_adv_fn(batch.fake_eps, batch.fake_labels, keys[4])
      metrics["zcr_dis"] = regularizers.consistency_penalty(fake_adv, other)
      total += weight(hyper, "zcr_dis_weight") * metrics["zcr_dis"]
    return total, metrics

  def data_efficient_terms(d_params, d_collections, batch, real_adv, fake_adv, rng, hyper,
                           carried):
    """(LeCam + bCR + zCR terms of D's loss, the updated LeCam EMAs, metrics)."""
    total, lecam, metrics = 0.0, carried.lecam, {}
    if lecam is not None:
      total, lecam, metrics = lecam_term(real_adv, fake_adv, carried, hyper)
    d_adv_fn = functools.partial(d_adv, d_params, d_collections)
    term, cr_metrics = consistency_terms(d_adv_fn, batch, real_adv, fake_adv, rng, hyper)
    return total + term, lecam, metrics | cr_metrics

  def critic_loss(d_params, d_collections, batch, rng, hyper, carried):
    rng_real, rng_fake, rng_gp = jax.random.split(rng, 3)
    aug_real = aug_fake = None
    if augment is not None:
      aug_real, aug_fake = jax.random.split(jax.random.fold_in(rng, _AUGMENT_STREAM))
    real, real_labels, fake, fake_labels = batch[:4]
    real_out, d_collections = apply_model(discriminator, d_params, d_collections,
                                          seen(real, aug_real, carried.ada_p), real_labels,
                                          train=True, rng=rng_real, update_spectral=True)
    fake_out, d_collections = apply_model(discriminator, d_params, d_collections,
                                          seen(fake, aug_fake, carried.ada_p), fake_labels,
                                          train=True, rng=rng_fake)
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
      r1 = regularizers.r1_penalty(lambda x: critic(seen(x, aug_real, carried.ada_p)), real)
      loss += 0.5 * weight(hyper, "r1_penalty") * r1
      metrics["r1_penalty"] = r1
    if o.aux_classifier_weight or "aux_classifier_weight" in hyper:
      class_loss = losses.classification_loss(real_out["class_logits"], real_labels)
      if o.aux_classifier_on_fake:
        class_loss += losses.classification_loss(fake_out["class_logits"], fake_labels)
      loss += weight(hyper, "aux_classifier_weight") * class_loss
      metrics["d_class_loss"] = class_loss
      metrics["d_real_class_acc"] = _class_accuracy(real_out["class_logits"], real_labels)
    term, lecam, extra_metrics = data_efficient_terms(
        d_params, d_collections, batch, real_out["adv"], fake_out["adv"], rng, hyper, carried)
    if extra_metrics:  # off: the loss of the plain step, bit for bit
      loss += term
      metrics.update(extra_metrics)
    metrics["d_loss"] = loss
    real_sign_sum = jnp.sum(jnp.sign(real_out["adv"].astype(jnp.float32)))
    return loss, (d_collections, lecam, metrics, real_sign_sum)

  def critic_sample(g_params, step_rng, hyper, batch_size, g_collections, index):
    """G's images for critic update `index` and the key of its loss."""
    z_key, loss_key = jax.random.split(jax.random.fold_in(step_rng, index))
    z, fake_labels = sample_latents(z_key, generator, batch_size, o.batch_sharding)
    fake, g_collections = apply_model(generator, g_params, g_collections, z, fake_labels,
                                      train=True)  # G's spectral vectors move in its update
    fake_eps = None
    if on(hyper, "zcr_dis_weight"):
      fake_eps = jax.lax.stop_gradient(
          perturbed(g_params, g_collections, z, fake_labels, z_key))
    return g_collections, (jax.lax.stop_gradient(fake), fake_labels, fake_eps, loss_key)

  def critic_update(hyper, carried, carry, inputs):
    d_player, lecam = carry
    real, real_labels, fake, fake_labels, fake_eps, loss_key = inputs
    batch = _CriticBatch(real, real_labels, fake, fake_labels, fake_eps)
    grads, (d_collections, lecam, metrics, real_sign_sum) = jax.grad(critic_loss, has_aux=True)(
        d_player.params, d_player.collections, batch, loss_key, hyper,
        carried._replace(lecam=lecam))
    d_player = _apply_updates(d_player, grads, d_tx, d_collections, o.d_projection)
    return (d_player, lecam), (metrics, real_sign_sum)

  def generator_loss(g_params, g_collections, d_player, batch_size, rng, hyper, ada_p):
    z_key, d_key = jax.random.split(rng)
    z, fake_labels = sample_latents(z_key, generator, batch_size, o.batch_sharding)
    fake, g_collections = apply_model(generator, g_params, g_collections, z, fake_labels,
                                      train=True, update_spectral=True)
    aug_key = None if augment is None else jax.random.fold_in(rng, _AUGMENT_STREAM)
    fake_out, _ = apply_model(discriminator, d_player.params, d_player.collections,
                              seen(fake, aug_key, ada_p), fake_labels, train=True, rng=d_key)
    loss = objective.generator_loss(fake_out["adv"])
    metrics = {"g_adv_loss": loss}
    if o.aux_classifier_weight or "aux_classifier_weight" in hyper:
      class_loss = losses.classification_loss(fake_out["class_logits"], fake_labels)
      loss += weight(hyper, "aux_classifier_weight") * class_loss
      metrics["g_class_loss"] = class_loss
    if on(hyper, "zcr_gen_weight"):
      distance = regularizers.consistency_penalty(
          fake, perturbed(g_params, g_collections, z, fake_labels, z_key))
      loss -= weight(hyper, "zcr_gen_weight") * distance
      metrics["zcr_gen"] = distance
    metrics["g_loss"] = loss
    return loss, (g_collections, metrics)

  def update_ema(ema_params, g_params, step, hyper):
    if ema_params is None:
      return None
    decay = jnp.where(step >= o.ema_start_step, weight(hyper, "ema_decay"), 0.0)
    return optax.incremental_update(g_params, ema_params, step_size=1.0 - decay)

  def update_ada(ada, real_sign_sum, real_count, step, hyper):
    """ADA's state after this step and its metrics ({} without ADA)."""
    if ada is None:
      return None, {}
    sign_sum = ada.sign_sum + real_sign_sum
    count = ada.count + real_count
    adjust = (step + 1) % o.ada_interval == 0
    target = weight(hyper, "ada_target")
    moved = ada_lib.ada_update(ada.p, sign_sum, count, target=target, batch_size=real_count,
                               interval=o.ada_interval, speed_images=o.ada_speed_images)
    new = AdaState(p=jnp.where(adjust & (target > 0), moved, ada.p),
                   sign_sum=jnp.where(adjust, 0.0, sign_sum),
                   count=jnp.where(adjust, 0, count))
    return new, {"ada_p": ada.p, "ada_rt": sign_sum / jnp.maximum(count, 1)}

  def check_state(state):
    for name, wanted in (("ada", o.uses_ada), ("lecam", o.uses_lecam)):
      if wanted and getattr(state, name) is None:
        raise ValueError(f"the step uses {name} but the state has no {name!r} field; build "
                         "the state with the same options (GAN.init, or create_state with "
                         "ada_p / use_lecam)")

  def loop(fn, carry, xs):
    """`lax.scan` of `fn` over the leading axis of `xs`, or the same loop written out."""
    if not o.unroll_critic:
      return jax.lax.scan(fn, carry, xs)
    outputs = []
    for i in range(o.n_critic):
      carry, out = fn(carry, jax.tree.map(lambda v, i=i: v[i], xs))
      outputs.append(out)
    return carry, jax.tree.map(lambda *v: jnp.stack(v), *outputs)

  def critic_updates(state, images, labels, hyper, critic_rng, carried):
    """The n_critic D updates: first G's images for all of them (G's parameters do not change
    during the critic updates; its collections move in the same order), then the updates, so
    a scan's body holds one D update and the G passes are not on its critical path."""
    sample = functools.partial(critic_sample, state.generator.params, critic_rng, hyper,
                               images.shape[1])
    g_collections, samples = loop(sample, state.generator.collections, jnp.arange(o.n_critic))
    update = functools.partial(critic_update, hyper, carried)
    (d_player, lecam), outputs = loop(update, (state.discriminator, carried.lecam),
                                      (images, labels, *samples))
    return (d_player, g_collections, lecam), outputs

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
    check_state(state)
    ada = state.ada if o.uses_ada else None
    lecam = state.lecam if o.uses_lecam else None
    step_rng = jax.random.fold_in(state.rng, state.step)
    critic_rng, g_rng = jax.random.split(step_rng)
    carried = _Carried(state.step, None if ada is None else ada.p, lecam)
    (d_player, g_collections, lecam), (d_metrics, sign_sums) = critic_updates(
        state, images, labels, hyper, critic_rng, carried)
    g_player = state.generator
    grads, (g_collections, g_metrics) = jax.grad(generator_loss, has_aux=True)(
        g_player.params, g_collections, d_player, images.shape[1], g_rng, hyper, carried.ada_p)
    g_player = _apply_updates(g_player, grads, g_tx, g_collections)
    real_count = o.n_critic * images.shape[1]
    ada, ada_metrics = update_ada(ada, jnp.sum(sign_sums), real_count, state.step, hyper)
    new_state = state.replace(
        step=state.step + 1,
        generator=g_player,
        discriminator=d_player,
        ema_params=update_ema(state.ema_params, g_player.params, state.step, hyper))
    if o.uses_ada:
      new_state = new_state.replace(ada=ada)
    if o.uses_lecam:
      new_state = new_state.replace(lecam=lecam)
    metrics = {k: jnp.mean(v) for k, v in d_metrics.items()} | g_metrics
    metrics["d_real_sign"] = jnp.sum(sign_sums) / real_count
    return new_state, metrics | ada_metrics

  return train_step


def make_sample_fn(generator: nn.Module) -> Callable[[PyTree, Array, Array | None], Array]:
  """Builds ``sample(variables, z, labels) -> images``: the generator in inference mode.

  `variables` is e.g. `GANState.sampling_variables` (EMA weights when kept); batch norm uses its
  running statistics and spectral-norm vectors are not updated.
  """

  def sample(variables: PyTree, z: Array, labels: Array | None = None) -> Array:
    return generator.apply(variables, z, labels, train=False)

  return sample
