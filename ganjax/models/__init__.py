"""Generators and discriminators, registered by name.

A config selects an architecture with ``config.generator.name`` / ``config.discriminator.name``;
the remaining keys of those sections are the module's fields (``width``, ``z_dim``, ``norm``
...). The data decides ``image_size``, ``channels`` and (for conditional models)
``num_classes``.

Interface every registered model follows:

* generator: ``G.apply(variables, z [B, z_dim], labels [B] | None, train=bool)`` -> images
  ``[B, H, W, C]`` float32 in [-1, 1]; it has a ``z_dim`` field and a ``num_classes`` field
  (0 = unconditional); a conditional generator also takes class weights ``[B, num_classes]``
  for labels (mixtures of the class embeddings, `conditioning.class_embedding`);
* discriminator: ``D.apply(variables, images, labels | None, train=bool)`` -> dict with ``'adv'``
  (``[B]`` raw adversarial outputs) and, for auxiliary-classifier models, ``'class_logits'``
  (``[B, num_classes]``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn

from ganjax.errors import ConfigError
from ganjax.models import biggan, critic, dcgan, resnet

GENERATORS: dict[str, type[nn.Module]] = {
    "dcgan": dcgan.Generator,
    "resnet": resnet.Generator,
    "biggan": biggan.Generator,
}
DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "dcgan": dcgan.Discriminator,
    "resnet": resnet.Discriminator,
    "acgan_critic": critic.Critic,
}


def _build(registry: Mapping[str, type[nn.Module]], role: str, options: Mapping[str, Any],
           **context: Any) -> nn.Module:
  options = dict(options)
  name = options.pop("name", None)
  if name not in registry:
    raise ConfigError(f"unknown {role} {name!r}; choose one of {sorted(registry)}")
  cls = registry[name]
  fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  unknown = sorted(set(options) - fields)
  if unknown:
    raise ConfigError(f"{role} {name!r} has no option(s) {unknown}; it takes {sorted(fields)}")
  kwargs = {k: v for k, v in context.items() if k in fields}
  kwargs.update(options)
  return cls(**kwargs)


def build_generator(options: Mapping[str, Any], **context: Any) -> nn.Module:
  """Builds ``GENERATORS[options['name']]`` with the other options as its fields.

  `context` supplies data-dependent fields (image_size, channels, num_classes, dtype) that the
  module takes; options override them.
  """
  return _build(GENERATORS, "generator", options, **context)


def build_discriminator(options: Mapping[str, Any], **context: Any) -> nn.Module:
  """Builds ``DISCRIMINATORS[options['name']]``; see `build_generator`."""
  return _build(DISCRIMINATORS, "discriminator", options, **context)
