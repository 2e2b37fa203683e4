"""``ganjax-visualize`` / ``python -m ganjax.analysis.visualize --workdir RUN --kind KIND --out DIR``.

``--kind`` may be repeated to run several kinds on one restored network.

Works on a classifier run (configs/classifier.py) and on a GAN run whose discriminator has an
auxiliary classifier (configs/acgan.py, configs/wgan_gp_acgan.py); the discriminator is restored
from the run's latest checkpoint (``--step`` for another). Kinds (`ganjax.analysis.gradients`
has the formulas):

* ``perturb``: the first ``--num_images`` images of the ``--split`` split, the gradient of the
  class loss with respect to each, and the images after one signed-gradient step of
  ``--step_size`` (in [-1, 1] image units; 2/255 is one grey level): ``perturb_images.png``,
  ``perturb_gradients.png`` (each gradient scaled by its largest magnitude, grey = 0),
  ``perturb_perturbed.png``. Prints the accuracy on the batch before and after, and for GAN runs
  the same on a batch of generated images labelled with their conditioning classes
  (``perturb_generated.png``, ``perturb_generated_perturbed.png``).
* ``max_class``: for each class, ``--num_starts`` images found by gradient ascent on its logit
  from fixed starts (the mean test image plus noise) with an L2 penalty and clipping to
  [-1, 1]: ``max_class.png``, one row per start, one column per class.
* ``max_features --layer N[,M...]``: images maximizing the mean activation of the first
  ``--num_channels`` channels of the output of the N-th convolution (1-based, in the order the
  network applies them): ``max_features_layer<N>.png`` per layer.

Each kind writes ``<kind>.json`` with what it measured (accuracies, logits or activations before
and after, step sizes, layers, channels).
"""

from __future__ import annotations

from ganjax import cli  # first: sets up the process before TensorFlow and JAX load

import dataclasses  # pylint: disable=g-import-not-at-top,g-bad-import-order
import os
from typing import Any, Callable

from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from ganjax import data, tasks
from ganjax.analysis import gradients
from ganjax.classifier.step import make_logits_fn
from ganjax.data import images as image_io
from ganjax.errors import ConfigError, DataError
from ganjax.runtime import files

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A classifier run or an auxiliary-classifier GAN run.")
flags.DEFINE_multi_enum("kind", None, ["perturb", "max_class", "max_features"],
                        "What to compute (repeat the flag for several).")
flags.DEFINE_string("out", None, "Directory for the PNG grids and the JSON summary.")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_list("layer", ["1"], "max_features: convolution number(s), 1-based.")
flags.DEFINE_float("step_size", None, "perturb: signed-gradient step (default 8/255 * 2); "
                   "max_class / max_features: largest pixel change per ascent step "
                   "(default 0.02).")
flags.DEFINE_integer("num_steps", 200, "Gradient-ascent steps.")
flags.DEFINE_float("l2_penalty", 1e-3, "Gradient ascent: weight of ||x||^2.")
flags.DEFINE_integer("num_images", 64, "perturb: images of the batch.")
flags.DEFINE_integer("num_starts", 4, "max_class: starts per class.")
flags.DEFINE_integer("num_channels", 16, "max_features: channels per layer (the first ones).")
flags.DEFINE_string("dataset", None, "Data set spec for real images (default: the run's).")
flags.DEFINE_string("split", "test", "Split of the real images.")
flags.DEFINE_integer("seed", 0, "Seed of the starts and of the generated images.")
flags.mark_flags_as_required(["workdir", "kind", "out"])

DEFAULT_PERTURB_STEP = 2 * 8 / 255
DEFAULT_ASCENT_STEP = 0.02
REAL_GRIDS = {"images": "perturb_images.png", "gradients": "perturb_gradients.png",
              "perturbed": "perturb_perturbed.png"}
GENERATED_GRIDS = {"images": "perturb_generated.png",
                   "perturbed": "perturb_generated_perturbed.png"}


@dataclasses.dataclass(frozen=True)
class Subject:
  """A restored discriminator and what the analyses need about its run.

  Attributes:
    network: the discriminator module.
    variables: its variables (params and collections), inference mode.
    config: the run's config.
    image_shape, class_names: of the run's data.
    generate: ``generate(num, seed) -> (images [-1, 1], labels)`` for GAN runs, else None.
  """

  network: Any
  variables: Any
  config: Any
  image_shape: tuple[int, int, int]
  class_names: tuple[str, ...]
  generate: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None


def _generator(gan: Any, state: Any) -> Callable[[int, int], tuple[np.ndarray, np.ndarray]]:
  """``generate(num, seed) -> (images, labels)`` of a conditional GAN, labels cycling."""
  sample = jax.jit(gan.sample_fn())
  num_classes = gan.generator.num_classes

  def generate(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    z = jax.random.normal(jax.random.PRNGKey(seed), (num, gan.generator.z_dim), jnp.float32)
    labels = (np.arange(num) % num_classes).astype(np.int32)
    fake = sample(state.sampling_variables, z, labels)
    return np.asarray(jax.device_get(fake)), labels

  return generate


def load_subject(workdir: str, step: int | None = None) -> Subject:
  """The discriminator of the run in `workdir` (`ganjax.tasks.load_run`), whichever task made
  it; GAN runs need an auxiliary classifier."""
  run = tasks.load_run(workdir, step)
  network = run.discriminator
  if run.gan is not None and not (network.num_classes and
                                  getattr(network, "condition", "") == "ac"):
    raise ConfigError(f"the discriminator of {workdir!r} has no auxiliary classifier "
                      "(discriminator.condition='ac' with conditional=True)")
  conditional = run.gan is not None and run.gan.generator.num_classes
  return Subject(network, run.discriminator_variables, run.config, run.spec.image_shape,
                 run.spec.class_names, _generator(run.gan, run.state) if conditional else None)


def _real_batch(subject: Subject, num: int, split: str, dataset: str | None
                ) -> tuple[np.ndarray, np.ndarray]:
  spec = dataset or subject.config.dataset
  real = data.load_dataset(spec, split, subject.image_shape[0],
                           data_dir=subject.config.data_dir or None)
  images, labels = next(data.iterate_in_order(real, num))
  return data.to_float(images), labels


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(np.argmax(logits, -1) == labels))


def _scaled(g: np.ndarray) -> np.ndarray:
  """Each gradient divided by its largest magnitude: [-1, 1], 0 (grey) where it vanishes."""
  return g / (np.max(np.abs(g), axis=(1, 2, 3), keepdims=True) + 1e-12)


# -- kinds ------------------------------------------------------------------------------------


def make_perturb_fn(network: Any) -> Callable[..., tuple[jax.Array, ...]]:
  """``perturb(variables, images, labels, step_size) -> (grads, perturbed, logits before,
  logits after)``, pure; jit it once."""
  logits_fn = make_logits_fn(network)

  def perturb(variables, images, labels, step_size):
    grads = gradients.class_loss_gradient(logits_fn, variables, images, labels)
    moved = gradients.signed_gradient_step(images, grads, step_size)
    return grads, moved, logits_fn(variables, images), logits_fn(variables, moved)

  return perturb


def _perturb_summary(perturb, subject: Subject, images, labels, step_size: float,
                     grids: dict[str, str], out: str, rows: int) -> dict[str, Any]:
  """Runs `perturb` on a batch, writes the `grids` it names ({'images' | 'gradients' |
  'perturbed': file name}) and returns the batch's accuracies and logits before and after."""
  grads, moved, before, after = jax.device_get(
      perturb(subject.variables, jnp.asarray(images), jnp.asarray(labels), step_size))
  batches = {"images": images, "gradients": _scaled(np.asarray(grads)), "perturbed": moved}
  for what, name in grids.items():
    files.write_png(os.path.join(out, name),
                    image_io.make_grid(np.asarray(batches[what]), rows=rows))
  true_before = np.take_along_axis(before, labels[:, None], 1)[:, 0]
  true_after = np.take_along_axis(after, labels[:, None], 1)[:, 0]
  return {"num_images": int(len(labels)), "accuracy_before": _accuracy(before, labels),
          "accuracy_after": _accuracy(after, labels),
          "mean_true_logit_before": float(np.mean(true_before)),
          "mean_true_logit_after": float(np.mean(true_after)),
          "mean_max_logit_before": float(np.mean(np.max(before, -1))),
          "mean_max_logit_after": float(np.mean(np.max(after, -1))),
          "files": list(grids.values())}


def run_perturb(subject: Subject, out: str) -> dict[str, Any]:
  step_size = DEFAULT_PERTURB_STEP if FLAGS.step_size is None else FLAGS.step_size
  perturb = jax.jit(make_perturb_fn(subject.network))
  rows = max(1, int(np.sqrt(FLAGS.num_images)))
  images, labels = _real_batch(subject, FLAGS.num_images, FLAGS.split, FLAGS.dataset)
  summary = {"kind": "perturb", "step_size": step_size, "split": FLAGS.split,
             "real": _perturb_summary(perturb, subject, images, labels, step_size, REAL_GRIDS,
                                      out, rows)}
  print(f"perturb step_size={step_size:.4g}: real {FLAGS.split} accuracy "
        f"{summary['real']['accuracy_before']:.4f} -> {summary['real']['accuracy_after']:.4f} "
        f"on {len(labels)} images")
  if subject.generate is not None:
    fake, fake_labels = subject.generate(len(labels), FLAGS.seed)
    summary["generated"] = _perturb_summary(perturb, subject, fake, fake_labels, step_size,
                                            GENERATED_GRIDS, out, rows)
    print(f"perturb step_size={step_size:.4g}: generated accuracy "
          f"{summary['generated']['accuracy_before']:.4f} -> "
          f"{summary['generated']['accuracy_after']:.4f} on {len(fake_labels)} images")
  summary["files"] = summary["real"]["files"] + summary.get("generated", {}).get("files", [])
  return summary


def _starts(subject: Subject, num: int, seed: int) -> np.ndarray:
  """Fixed starts: the mean real image plus N(0, 0.1^2) noise per start (seeded)."""
  try:
    mean = np.mean(_real_batch(subject, 500, FLAGS.split, FLAGS.dataset)[0], axis=0)
  except DataError as e:  # the run's data is not here: start from grey
    logging.warning("no real images for the starts (%s); starting from grey plus noise", e)
    mean = np.zeros(subject.image_shape, np.float32)
  noise = np.random.default_rng(seed).normal(0.0, 0.1, (num,) + subject.image_shape)
  return np.clip(mean[None] + noise, -1.0, 1.0).astype(np.float32)


def _ascend(objective, subject: Subject, start: np.ndarray, targets: np.ndarray):
  step_size = DEFAULT_ASCENT_STEP if FLAGS.step_size is None else FLAGS.step_size
  ascend = jax.jit(gradients.gradient_ascent, static_argnums=0,
                   static_argnames=("num_steps",))
  images, before, after = ascend(objective, subject.variables, jnp.asarray(start),
                                 jnp.asarray(targets), step_size=step_size,
                                 l2_penalty=FLAGS.l2_penalty, num_steps=FLAGS.num_steps)
  return np.asarray(images), np.asarray(before), np.asarray(after), step_size


def run_max_class(subject: Subject, out: str) -> dict[str, Any]:
  k, r = len(subject.class_names), FLAGS.num_starts
  starts = np.repeat(_starts(subject, r, FLAGS.seed), k, axis=0)  # row = start, column = class
  targets = np.tile(np.arange(k, dtype=np.int32), r)
  logits_fn = make_logits_fn(subject.network)
  images, before, after, step_size = _ascend(gradients.class_logit_objective(logits_fn),
                                             subject, starts, targets)
  predicted = np.argmax(np.asarray(jax.jit(logits_fn)(subject.variables, images)), -1)
  files.write_png(os.path.join(out, "max_class.png"), image_io.make_grid(images, rows=r))
  per_class = {name: {"logit_before": float(np.mean(before[targets == c])),
                      "logit_after": float(np.mean(after[targets == c]))}
               for c, name in enumerate(subject.class_names)}
  summary = {"kind": "max_class", "step_size": step_size, "num_steps": FLAGS.num_steps,
             "l2_penalty": FLAGS.l2_penalty, "num_starts": r, "per_class": per_class,
             "fraction_classified_as_target": float(np.mean(predicted == targets)),
             "files": ["max_class.png"]}
  print(f"max_class: target logit {np.mean(before):.3f} -> {np.mean(after):.3f} (mean over "
        f"{len(targets)} images); classified as the target: "
        f"{summary['fraction_classified_as_target']:.3f}")
  return summary


def run_max_features(subject: Subject, out: str) -> dict[str, Any]:
  summary: dict[str, Any] = {"kind": "max_features", "num_steps": FLAGS.num_steps,
                             "l2_penalty": FLAGS.l2_penalty, "layers": {}, "files": []}
  for layer in (int(x) for x in FLAGS.layer):
    features_fn, path = gradients.conv_features_fn(subject.network, subject.variables,
                                                   subject.image_shape, layer)
    width = jax.eval_shape(features_fn, subject.variables,
                           jax.ShapeDtypeStruct((1,) + subject.image_shape, jnp.float32)
                           ).shape[-1]
    channels = np.arange(min(FLAGS.num_channels, width), dtype=np.int32)
    start = np.repeat(_starts(subject, 1, FLAGS.seed), len(channels), axis=0)
    images, before, after, step_size = _ascend(gradients.channel_mean_objective(features_fn),
                                               subject, start, channels)
    name = f"max_features_layer{layer}.png"
    grid = image_io.make_grid(images, rows=max(1, int(np.sqrt(len(channels)))))
    files.write_png(os.path.join(out, name), grid)
    summary["step_size"] = step_size
    summary["layers"][str(layer)] = {
        "module": "/".join(path), "channels": channels.tolist(),
        "activation_before": before.tolist(), "activation_after": after.tolist()}
    summary["files"].append(name)
    print(f"max_features layer {layer} ({'/'.join(path)}): mean channel activation "
          f"{np.mean(before):.3f} -> {np.mean(after):.3f} over channels 0..{len(channels) - 1}")
  return summary


KINDS: dict[str, Callable[[Subject, str], dict[str, Any]]] = {
    "perturb": run_perturb,
    "max_class": run_max_class,
    "max_features": run_max_features,
}


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
  subject = load_subject(FLAGS.workdir, FLAGS.step)
  os.makedirs(FLAGS.out, exist_ok=True)
  for kind in dict.fromkeys(FLAGS.kind):
    summary = KINDS[kind](subject, FLAGS.out)
    summary["workdir"] = os.path.abspath(FLAGS.workdir)
    path = os.path.join(FLAGS.out, f"{kind}.json")
    files.write_json(path, summary)
    print(f"wrote {', '.join(summary['files'])} and {os.path.basename(path)} to {FLAGS.out}")


def run() -> None:
  """The console script."""
  cli.run(main)


if __name__ == "__main__":
  run()
