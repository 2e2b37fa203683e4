"""From a config to the pure pieces of a run: models, optimizers, step options, init.

Everything here is built once, outside any step; the step itself only closes over the result.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ganjax import models
from ganjax.data.spec import DataSpec
from ganjax.gan import losses, optim, regularizers, steps
from ganjax.gan.state import GANState, create_state
from ganjax.ops import conv
from ganjax.errors import ConfigError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class GAN:
  """The models, optimizers and step options a config describes."""

  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  options: steps.StepOptions
  data: DataSpec
  use_ema: bool

  def init(self, rng: jax.Array) -> GANState:
    """The initial state (pure; jit it with the shardings you want)."""
    o = self.options
    return create_state(rng, self.generator, self.discriminator, self.g_tx, self.d_tx,
                        image_shape=self.data.image_shape, use_ema=self.use_ema,
                        ada_p=o.ada_initial_p if o.uses_ada else None,
                        use_lecam=o.uses_lecam)

  def train_step(self) -> Callable[..., Any]:
    """``train_step(state, batch) -> (state, metrics)``; see `ganjax.gan.steps.make_train_step`."""
    return steps.make_train_step(self.generator, self.discriminator, self.g_tx, self.d_tx,
                                 self.options)

  def sample_fn(self) -> Callable[..., jax.Array]:
    """``sample(variables, z, labels) -> images`` in inference mode."""
    return steps.make_sample_fn(self.generator)


def dtype_of(name: str) -> Any:
  if name not in DTYPES:
    raise ConfigError(f"unknown dtype {name!r}; choose one of {sorted(DTYPES)}")
  return DTYPES[name]


def data_efficient_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The `StepOptions` of augmentation (DiffAugment, ADA) and LeCam / bCR / zCR of `config`."""
  return dict(
      diffaugment=config.diffaugment,
      ada_target=config.ada_target,
      ada_initial_p=config.ada_initial_p,
      ada_interval=config.ada_interval,
      ada_speed_images=config.ada_speed_images,
      ada_preset=config.ada_preset,
      lecam_weight=config.lecam_weight,
      lecam_ema_decay=config.lecam_ema_decay,
      lecam_start_step=config.lecam_start_step,
      bcr_real_weight=config.bcr_real_weight,
      bcr_fake_weight=config.bcr_fake_weight,
      zcr_dis_weight=config.zcr_dis_weight,
      zcr_gen_weight=config.zcr_gen_weight,
      zcr_sigma=config.zcr_sigma,
  )


def critic_unrolled(config: ml_collections.ConfigDict, conv_backend: str = "auto") -> bool:
  """``config.unroll_critic``, or where it is None: unrolled unless the models' convolutions
  run on oneDNN and ``n_critic > 1``.

  On oneDNN's convolutions the `lax.scan` of the WGAN critics' updates runs as fast as the
  unrolled form and compiles 2-3x faster (`experiments/compile_times.py --compare`); with XLA's
  convolutions on a CPU a scan is an order of magnitude slower (XLA keeps the convolutions
  inside a loop on a slow path), and on GPUs and TPUs the unrolled form stays as it was (not
  measured here).
  """
  if config.unroll_critic is not None:
    return bool(config.unroll_critic)
  return config.n_critic == 1 or not conv.uses_onednn(conv_backend, dtype_of(config.dtype))


def build_gan(config: ml_collections.ConfigDict, data: DataSpec,
              batch_sharding: jax.sharding.Sharding | None = None,
              conv_backend: str = "auto") -> GAN:
  """Builds models, optimizers and step options from a config and the data's spec.

  `batch_sharding` constrains the batch inside the step (the trainer's mesh); `conv_backend`
  is the models' convolution backend (`ganjax.ops.conv.backend_for` of that mesh).
  """
  if config.n_critic < 1:
    raise ConfigError(f"n_critic must be at least 1, got {config.n_critic}")
  if config.image_size != data.image_shape[0]:
    raise ConfigError(f"config.image_size={config.image_size} but the data has images of shape "
                     f"{data.image_shape}")
  num_classes = data.num_classes if config.conditional else 0
  context = dict(image_size=data.image_shape[0], channels=data.image_shape[2],
                 num_classes=num_classes, dtype=dtype_of(config.dtype),
                 conv_backend=conv_backend)
  generator = models.build_generator(config.generator.to_dict(), **context)
  discriminator = models.build_discriminator(config.discriminator.to_dict(), **context)
  g_tx = optim.make_optimizer(config.g_optimizer.to_dict(), config.num_train_steps,
                              "g_optimizer")
  d_tx = optim.make_optimizer(config.d_optimizer.to_dict(),
                              config.num_train_steps * config.n_critic, "d_optimizer")
  options = steps.StepOptions(
      objective=losses.get_objective(config.loss, config.label_smoothing),
      n_critic=config.n_critic,
      gradient_penalty=config.gradient_penalty,
      r1_penalty=config.r1_penalty,
      aux_classifier_weight=config.aux_classifier_weight,
      aux_classifier_on_fake=config.aux_classifier_on_fake,
      d_projection=(regularizers.weight_clipping(config.weight_clip)
                    if config.weight_clip else None),
      ema_decay=config.ema_decay,
      ema_start_step=config.ema_start_step,
      unroll_critic=critic_unrolled(config, conv_backend),
      batch_sharding=batch_sharding,
      **data_efficient_options(config),
  )
  return GAN(generator, discriminator, g_tx, d_tx, options, data,
             use_ema=config.ema_decay > 0)
