"""ganjax: functional GAN training and evaluation in JAX/Flax.

The layers, bottom up: `ganjax.configs` (configs as Python), `ganjax.data`, `ganjax.ops`
(convolution backends), `ganjax.models`, `ganjax.gan` (state, pure steps, objectives,
regularizers, optimizers), `ganjax.diffaug` (differentiable augmentation),
`ganjax.population`, `ganjax.classifier`, `ganjax.eval`,
`ganjax.runtime` (the loop every task shares), `ganjax.tasks` (what a config runs),
`ganjax.analysis` and `ganjax.cli` (the command-line tools).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.2.0"

# Modules of the flat 0.1 layout and where they live now; importing them through the old name
# still works for this release, with a DeprecationWarning.
MOVED = {
    "state": "ganjax.gan.state",
    "steps": "ganjax.gan.steps",
    "losses": "ganjax.gan.losses",
    "regularizers": "ganjax.gan.regularizers",
    "optim": "ganjax.gan.optim",
    "experiment": "ganjax.gan.build",
    "default_config": "ganjax.configs.default",
    "sampling": "ganjax.eval.sampling",
    "checkpoints": "ganjax.runtime.checkpoints",
    "distributed": "ganjax.runtime.distributed",
    "images": "ganjax.data.images",
    "augment": "ganjax.data.augment",
    "class_accuracy": "ganjax.classifier.accuracy",
}


def __getattr__(name: str) -> Any:
  if name in MOVED:
    warnings.warn(f"ganjax.{name} moved to {MOVED[name]}", DeprecationWarning, stacklevel=2)
    return importlib.import_module(MOVED[name])
  raise AttributeError(f"module 'ganjax' has no attribute {name!r}")
