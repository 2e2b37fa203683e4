"""How class labels enter the players: conditional batch norm in the generator, projection and
auxiliary-classifier heads (or the label as an input) in the discriminator.

Generator (labels are class indices ``[B]``, or class weights ``[B, K]``: rows that mix the
classes' embeddings, as an interpolation from one class to another does; `class_embedding`,
`class_one_hot`):

* `ConditionalBatchNorm` -- batch norm without its own affine parameters, then a per-class gain
  and bias: ``y = BN(x) * (1 + gamma[c]) + beta[c]`` with ``gamma``, ``beta`` class embeddings
  ``[K, C]`` (de Vries et al., NeurIPS 2017; Miyato & Koyama, ICLR 2018; PyTorch-StudioGAN's
  ``ConditionalBatchNorm2d``).
* `LinearConditionalBatchNorm` -- the same with gain and bias linear in a conditioning vector
  ``e`` instead of looked up by class: ``y = BN(x) * (1 + e W_g) + e W_b`` (BigGAN, Brock et
  al., ICLR 2019, where ``e`` is the shared class embedding concatenated with this block's
  chunk of z; StudioGAN's ``BigGANConditionalBatchNorm2d``).

Discriminator heads on the pooled features ``h [B, F]`` (`DISCRIMINATOR_HEADS`):

* ``'none'`` -- ``adv = h w + b``.
* ``'projection'`` -- ``adv = h w + b + <embed(y), h>`` (Miyato & Koyama, "cGANs with
  Projection Discriminator", ICLR 2018, eq. (3)).
* ``'ac'`` -- ``adv = h w + b`` and ``class_logits = h W_c`` (no bias, as StudioGAN), the
  auxiliary classifier of ACGAN (Odena et al., ICML 2017).
* ``'input'`` -- the label enters at the input instead (`label_planes`: one-hot class planes
  concatenated to the image channels, as the conditional GAN of Mirza & Osindero, 2014, gives
  y to D); the head is ``'none'``'s.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.errors import ConfigError
from ganjax.models import layers

Array = jax.Array

BN_MOMENTUM = 0.9  # PyTorch's BatchNorm2d(momentum=0.1)
BN_EPS = 1e-4      # PyTorch-StudioGAN's batchnorm_2d eps for the ResNet / BigGAN generators


class ConditionalBatchNorm(nn.Module):
  """``BN(x) * (1 + gamma[y]) + beta[y]`` with class embeddings gamma, beta ``[K, C]``."""

  num_classes: int
  spectral_norm: bool = False
  weight_init: str = "ortho"
  dtype: Any = None
  conv_backend: str = "auto"  # the batch norm's kernels (`ganjax.models.layers.BatchNorm`)

  @nn.compact
  def __call__(self, x: Array, labels: Array, *, train: bool) -> Array:
    c = x.shape[-1]
    h = generator_batch_norm(train, self.dtype, "bn", self.conv_backend, affine=False)(x)
    emb = lambda name: class_embedding(
        layers.embed(self.num_classes, c, name=name, spectral_norm=self.spectral_norm,
                     init=self.weight_init, dtype=self.dtype), labels, self.num_classes)
    gain, bias = 1.0 + emb("gain"), emb("bias")
    return h * gain[:, None, None, :] + bias[:, None, None, :]


class LinearConditionalBatchNorm(nn.Module):
  """``BN(x) * (1 + e W_g) + e W_b`` for a conditioning vector e ``[B, D]`` (BigGAN)."""

  spectral_norm: bool = False
  weight_init: str = "ortho"
  dtype: Any = None
  conv_backend: str = "auto"  # the batch norm's kernels (`ganjax.models.layers.BatchNorm`)

  @nn.compact
  def __call__(self, x: Array, cond: Array, *, train: bool) -> Array:
    c = x.shape[-1]
    h = generator_batch_norm(train, self.dtype, "bn", self.conv_backend, affine=False)(x)
    lin = lambda name: layers.dense(c, name=name, spectral_norm=self.spectral_norm,
                                    init=self.weight_init, use_bias=False, dtype=self.dtype)(cond)
    gain, bias = 1.0 + lin("gain"), lin("bias")
    return h * gain[:, None, None, :] + bias[:, None, None, :]


def class_one_hot(labels: Array, num_classes: int, dtype: Any) -> Array:
  """One-hot rows ``[B, K]`` of class indices ``[B]``; class weights ``[B, K]`` as they are."""
  if labels.ndim == 2:
    _check_weights(labels, num_classes)
    return labels.astype(dtype)
  return jax.nn.one_hot(labels, num_classes, dtype=dtype)


def class_embedding(embed: Callable[[Array], Array], labels: Array, num_classes: int) -> Array:
  """``embed(labels)`` for class indices ``[B]``; for class weights ``w [B, K]`` the same mix of
  the K embeddings, ``w @ embed(arange(K))`` (one-hot rows give each class's embedding exactly).
  """
  if labels.ndim != 2:
    return embed(labels)
  _check_weights(labels, num_classes)
  table = embed(jnp.arange(num_classes))
  return jnp.dot(labels.astype(table.dtype), table, precision=jax.lax.Precision.HIGHEST)


def _check_weights(weights: Array, num_classes: int) -> None:
  if weights.shape[-1] != num_classes:
    raise ValueError(f"class weights must have {num_classes} columns (one per class), got shape "
                     f"{weights.shape}")


def generator_batch_norm(train: bool, dtype: Any, name: str, backend: str = "auto", *,
                         affine: bool = True) -> nn.Module:
  """The generators' batch norm (`layers.BatchNorm`, whose statistics take the convolution
  `backend`'s CPU kernels where those apply): with its own scale and bias (``affine``), or
  without, as the conditional batch norms normalize before their class-conditional gains."""
  return layers.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPS,
                          use_scale=affine, use_bias=affine, dtype=dtype, backend=backend,
                          name=name)


def label_planes(x: Array, labels: Array, num_classes: int) -> Array:
  """Concatenates one-hot class planes ``[B, H, W, K]`` to the channels of x."""
  onehot = jax.nn.one_hot(labels, num_classes, dtype=x.dtype)
  planes = jnp.broadcast_to(onehot[:, None, None, :], x.shape[:3] + (num_classes,))
  return jnp.concatenate([x, planes], axis=-1)


# -- Discriminator heads ---------------------------------------------------------------------

HeadFn = Callable[..., dict[str, Array]]


def _adv(h: Array, make: Callable[..., Any]) -> Array:
  return make("dense", 1, name="adv")(h)[:, 0]


def _plain_head(h, labels, num_classes, make):
  del labels, num_classes
  return {"adv": _adv(h, make)}


def _projection_head(h, labels, num_classes, make):
  adv = _adv(h, make)
  if num_classes:
    if labels is None:
      raise ValueError("the projection discriminator needs the class labels of its input")
    y = make("embed", num_classes, h.shape[-1], name="projection")(labels)
    adv = adv + jnp.sum(y * h, axis=-1)
  return {"adv": adv}


def _classifier_head(h, labels, num_classes, make):
  del labels
  if not num_classes:
    raise ConfigError("the auxiliary-classifier head ('ac') needs class labels: set "
                      "config.conditional=True")
  return {"adv": _adv(h, make),
          "class_logits": make("dense", num_classes, name="classifier", use_bias=False)(h)}


DISCRIMINATOR_HEADS: dict[str, HeadFn] = {
    "none": _plain_head,
    "input": _plain_head,
    "projection": _projection_head,
    "ac": _classifier_head,
}


def check_condition(condition: str) -> None:
  if condition not in DISCRIMINATOR_HEADS:
    raise ConfigError(f"unknown discriminator condition {condition!r}; choose one of "
                      f"{sorted(DISCRIMINATOR_HEADS)}")


def discriminator_head(h: Array, labels: Array | None, *, condition: str, num_classes: int,
                       spectral_norm: bool = False, init: str = "ortho",
                       dtype: Any = None) -> dict[str, Array]:
  """The discriminator's outputs from pooled features h ``[B, F]``; see the module docstring.

  Call it inside a compact module method (it creates the head's layers there).
  """
  check_condition(condition)

  def make(kind, *args, name, **kwargs):
    factory = layers.dense if kind == "dense" else layers.embed
    return factory(*args, name=name, spectral_norm=spectral_norm, init=init, dtype=dtype,
                   **kwargs)

  out = DISCRIMINATOR_HEADS[condition](h, labels if num_classes else None, num_classes, make)
  return {k: v.astype(jnp.float32) for k, v in out.items()}
