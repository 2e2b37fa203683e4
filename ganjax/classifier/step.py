"""A discriminator trained alone as a classifier: its state, its pure step, its evaluation.

The network is any `ganjax.models` discriminator with an auxiliary-classifier head
(``condition='ac'``, output ``'class_logits'``); its real/fake output ``'adv'`` is computed and
ignored. The loss is the mean softmax cross-entropy of the class logits,
``L = -1/B sum_i log softmax(f(x_i))[y_i]`` (`ganjax.gan.losses.classification_loss`), minimized
with an optax optimizer.

`make_classifier_step(discriminator, tx)` returns ``step(state, batch) -> (state, metrics)``: a
pure function like `ganjax.gan.steps.make_train_step`, to `jax.jit` over a mesh.
`make_eval_step(discriminator)` counts correct predictions on a (padded, masked) batch.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ganjax.gan import losses
from ganjax.gan.state import PlayerState
from ganjax.gan.steps import apply_model

Array = jax.Array
Batch = dict[str, Array]
Metrics = dict[str, Array]


@flax.struct.dataclass
class ClassifierState:
  """Everything a classifier run carries from step to step (one pytree).

  Attributes:
    step: number of updates done (int32 scalar).
    rng: base PRNG key; update t uses ``fold_in(rng, t)`` (dropout).
    model: parameters, non-trainable collections and optimizer state of the network, the same
      `PlayerState` a GAN's discriminator has.
  """

  step: Array
  rng: Array
  model: PlayerState


def create_classifier_state(rng: Array, discriminator: nn.Module,
                            tx: optax.GradientTransformation,
                            image_shape: tuple[int, int, int]) -> ClassifierState:
  """Initializes the network and its optimizer. Pure; `jax.jit` it."""
  init_key, base_key = jax.random.split(rng)
  images = jnp.zeros((2,) + tuple(image_shape), jnp.float32)
  variables = dict(discriminator.init(init_key, images, None, train=False))
  params = variables.pop("params")
  return ClassifierState(step=jnp.zeros((), jnp.int32), rng=base_key,
                         model=PlayerState(params, variables, tx.init(params)))


def _flat(batch: Batch) -> tuple[Array, Array]:
  """Images [..., H, W, C] and labels [...] with the leading axes merged into one."""
  images, labels = batch["image"], batch["label"]
  return images.reshape((-1,) + images.shape[-3:]), labels.reshape(-1)


def accuracy(logits: Array, labels: Array) -> Array:
  """Fraction of argmax predictions equal to the labels."""
  return jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))


def make_classifier_step(discriminator: nn.Module, tx: optax.GradientTransformation
                         ) -> Callable[[ClassifierState, Batch], tuple[ClassifierState, Metrics]]:
  """``step(state, batch) -> (state, metrics)``: one optimizer update on the cross-entropy.

  ``batch``: ``{'image': float32 [..., B, H, W, C] in [-1, 1], 'label': int32 [..., B]}`` (the
  leading axes, e.g. the trainer's ``[1, B]``, are merged). Metrics: ``loss`` (the batch mean
  cross-entropy before the update) and ``accuracy`` (train mode, on the batch as given).
  """

  def step(state: ClassifierState, batch: Batch) -> tuple[ClassifierState, Metrics]:
    images, labels = _flat(batch)
    model = state.model
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      out, collections = apply_model(discriminator, params, model.collections, images, None,
                                     train=True, rng=rng)
      logits = out["class_logits"]
      return losses.classification_loss(logits, labels), (logits, collections)

    (loss, (logits, collections)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        model.params)
    updates, opt_state = tx.update(grads, model.opt_state, model.params)
    params = optax.apply_updates(model.params, updates)
    new_state = state.replace(step=state.step + 1,
                              model=PlayerState(params, collections, opt_state))
    return new_state, {"loss": loss, "accuracy": accuracy(logits, labels)}

  return step


def make_logits_fn(discriminator: nn.Module) -> Callable[[Any, Array], Array]:
  """``logits(variables, images [B, H, W, C]) -> class logits [B, K]`` in inference mode."""

  def logits(variables: Any, images: Array) -> Array:
    return discriminator.apply(variables, images, None, train=False)["class_logits"]

  return logits


def make_eval_step(discriminator: nn.Module) -> Callable[..., Metrics]:
  """``eval_step(variables, images [B, ...], labels [B], mask [B]) -> {'correct', 'loss_sum',
  'count'}``: sums over the examples where `mask` is true (padding rows of the last batch are
  false), so a data set's accuracy is ``sum(correct) / sum(count)``."""
  logits_fn = make_logits_fn(discriminator)

  def eval_step(variables: Any, images: Array, labels: Array, mask: Array) -> Metrics:
    logits = logits_fn(variables, images)
    weight = mask.astype(jnp.float32)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    return {"correct": jnp.sum(correct * weight), "loss_sum": jnp.sum(xent * weight),
            "count": jnp.sum(weight)}

  return eval_step
