"""Gradient-based views of a classifier: input gradients, signed-gradient steps, and images
that maximize a class logit or a channel's mean activation.

All functions are pure and take the network as a function of ``(variables, images)``, so they
`jax.jit` once and work for every discriminator with an auxiliary-classifier head:

* `class_loss_gradient`: ``g = d/dx CE(f(x), y)``, the gradient of the mean class cross-entropy
  with respect to the input images (Simonyan et al., "Deep Inside Convolutional Networks:
  Visualising Image Classification Models and Saliency Maps", ICLR 2014 workshop).
* `signed_gradient_step`: ``x' = clip(x + eps * sign(g), -1, 1)``, the fast gradient sign step
  that raises the loss (Goodfellow et al., "Explaining and Harnessing Adversarial Examples",
  ICLR 2015).
* `gradient_ascent`: ``x <- clip(x + lr * d / max|d|, -1, 1)`` with ``d = d/dx [J(x) -
  lambda ||x||^2]``, ``num_steps`` times, for an objective J per image: a class logit
  (`class_logit_objective`, Simonyan et al. 2014) or the mean over positions of one channel of a
  layer's output (`channel_mean_objective`, Erhan et al., "Visualizing Higher-Layer Features
  of a Deep Network", 2009). Each step is normalized per image to move pixels by at most lr.

Intermediate outputs come from Flax's ``capture_intermediates``: `conv_layer_paths` lists the
convolutions of a network in call order, `make_features_fn` returns the output of one of them,
and the parameters (hence old checkpoints) are untouched.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.gan import losses
from ganjax.errors import ConfigError
from ganjax.ops.conv import DownConv

Array = jax.Array
LogitsFn = Callable[[Any, Array], Array]
Objective = Callable[[Any, Array, Array], Array]

CONV_TYPES = (nn.Conv, DownConv)


def class_loss_gradient(logits_fn: LogitsFn, variables: Any, images: Array,
                        labels: Array) -> Array:
  """``d/dx`` of the mean class cross-entropy at `images` [B, H, W, C]; same shape."""
  loss = lambda x: losses.classification_loss(logits_fn(variables, x), labels)
  return jax.grad(loss)(images)


def signed_gradient_step(images: Array, gradients: Array, step_size: float) -> Array:
  """``clip(x + step_size * sign(g), -1, 1)``: one fast-gradient-sign step up the loss."""
  return jnp.clip(images + step_size * jnp.sign(gradients), -1.0, 1.0)


def class_logit_objective(logits_fn: LogitsFn) -> Objective:
  """``J(variables, images, targets) = logits[b, targets[b]]`` per image [B]."""

  def objective(variables, images, targets):
    logits = logits_fn(variables, images)
    return jnp.take_along_axis(logits, targets[:, None], axis=1)[:, 0]

  return objective


def channel_mean_objective(features_fn: Callable[[Any, Array], Array]) -> Objective:
  """``J(variables, images, channels) = mean_{h,w} features[b, h, w, channels[b]]`` per image."""

  def objective(variables, images, channels):
    features = features_fn(variables, images)  # [B, H, W, C]
    means = jnp.mean(features, axis=(1, 2))
    return jnp.take_along_axis(means, channels[:, None], axis=1)[:, 0]

  return objective


def gradient_ascent(objective: Objective, variables: Any, start: Array, targets: Array, *,
                    step_size: float, l2_penalty: float, num_steps: int
                    ) -> tuple[Array, Array, Array]:
  """Images that raise ``J(x)[b] - l2_penalty * ||x_b||^2`` from `start`; see the module doc.

  Image b ascends its own objective (target ``targets[b]``); in inference mode the images of a
  batch do not interact, so one gradient of the sum gives every image's gradient. Returns
  (images, J at the start [B], J at the end [B]).
  """

  def total(x):
    penalty = l2_penalty * jnp.sum(jnp.square(x), axis=(1, 2, 3))
    return jnp.sum(objective(variables, x, targets) - penalty)

  def body(_, x):
    d = jax.grad(total)(x)
    scale = jnp.max(jnp.abs(d), axis=(1, 2, 3), keepdims=True) + 1e-12
    return jnp.clip(x + step_size * d / scale, -1.0, 1.0)

  images = jax.lax.fori_loop(0, num_steps, body, start)
  return images, objective(variables, start, targets), objective(variables, images, targets)


# -- intermediate outputs ---------------------------------------------------------------------


def conv_layer_paths(module: nn.Module, variables: Any, image_shape: tuple[int, int, int]
                     ) -> list[tuple[str, ...]]:
  """Module paths of the convolutions of a discriminator, in the order they are applied."""
  order: list[tuple[str, ...]] = []

  def record(mdl: nn.Module, method: str) -> bool:
    if method == "__call__" and isinstance(mdl, CONV_TYPES) and mdl.path not in order:
      order.append(tuple(mdl.path))
    return False

  images = jax.ShapeDtypeStruct((1,) + tuple(image_shape), jnp.float32)
  jax.eval_shape(lambda v, x: module.apply(v, x, None, train=False,
                                           capture_intermediates=record), variables, images)
  return order


def make_features_fn(module: nn.Module, path: tuple[str, ...]) -> Callable[[Any, Array], Array]:
  """``features(variables, images) -> [B, H', W', C']``, the output of the module at `path`."""

  def features(variables, images):
    _, captured = module.apply(
        variables, images, None, train=False, mutable=["intermediates"],
        capture_intermediates=lambda mdl, method: method == "__call__" and
        tuple(mdl.path) == path)
    node = captured["intermediates"]
    for name in path:
      node = node[name]
    out = node["__call__"][-1]  # the module's own output (a deferred bias's convolution first)
    if isinstance(out, tuple):  # a deferred bias (`DownConv(defer_bias=True)`): add it
      y, bias = out
      out = y if bias is None else y + bias
    return out

  return features


def conv_features_fn(module: nn.Module, variables: Any, image_shape: tuple[int, int, int],
                     layer: int) -> tuple[Callable[[Any, Array], Array], tuple[str, ...]]:
  """The output of the `layer`-th convolution (1-based, call order) and that module's path."""
  paths = conv_layer_paths(module, variables, image_shape)
  if not 1 <= layer <= len(paths):
    raise ConfigError(f"layer {layer} does not exist: the network has {len(paths)} "
                      f"convolutions ({', '.join('/'.join(p) for p in paths)}); use 1 to "
                      f"{len(paths)}")
  return make_features_fn(module, paths[layer - 1]), paths[layer - 1]
