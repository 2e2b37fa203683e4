"""Optimizers and learning-rate schedules from config sections, through optax.

A player's optimizer section looks like::

    ConfigDict(dict(name='adam', learning_rate=2e-4, b1=0.5, b2=0.999, schedule='constant'))

`OPTIMIZERS` and `SCHEDULES` map names to builders; every other key of the section is an
option of the named optimizer or schedule, and an option neither takes is an error.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import optax

from ganjax.errors import ConfigError

Schedule = Callable[[Any], Any]


def _adam(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Adam (Kingma & Ba, 2015); AdamW (Loshchilov & Hutter, 2019) when weight_decay > 0."""
  if weight_decay:
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
  return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


def _rmsprop(learning_rate, decay: float = 0.99, eps: float = 1e-8) -> optax.GradientTransformation:
  """RMSProp with PyTorch's defaults (alpha=0.99, eps added outside the square root), as used by
  the reference WGAN implementation (Arjovsky et al., 2017)."""
  return optax.rmsprop(learning_rate, decay=decay, eps=eps, eps_in_sqrt=False)


def _sgd(learning_rate, momentum: float = 0.0, nesterov: bool = False
         ) -> optax.GradientTransformation:
  return optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov)


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": _adam,
    "rmsprop": _rmsprop,
    "sgd": _sgd,
}


def _constant(learning_rate: float, total_steps: int) -> Schedule:
  del total_steps
  return optax.constant_schedule(learning_rate)


def _linear(learning_rate: float, total_steps: int, decay_start: float = 0.0,
            end_factor: float = 0.0) -> Schedule:
  """Constant until `decay_start` (a fraction of training), then linear to end_factor * lr."""
  begin = int(round(decay_start * total_steps))
  return optax.linear_schedule(learning_rate, end_factor * learning_rate,
                               transition_steps=max(total_steps - begin, 1),
                               transition_begin=begin)


def _step(learning_rate: float, total_steps: int, decay_every: float = 0.5,
          decay_factor: float = 0.1) -> Schedule:
  """Multiplies the rate by `decay_factor` every `decay_every` (a fraction of training)."""
  return optax.exponential_decay(learning_rate,
                                 transition_steps=max(int(round(decay_every * total_steps)), 1),
                                 decay_rate=decay_factor, staircase=True)


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": _constant,
    "linear": _linear,
    "step": _step,
}


def _options_of(fn: Callable[..., Any]) -> set[str]:
  return set(inspect.signature(fn).parameters) - {"learning_rate", "total_steps"}


def injectable_options(name: str) -> set[str]:
  """The numeric options of optimizer `name` that `make_optimizer` can keep in its state."""
  return {"learning_rate"} | (_options_of(OPTIMIZERS[name]) & INJECTABLE)


# Options that may be arrays in the optimizer state; the others select code (weight decay on or
# off, momentum on or off, Nesterov).
INJECTABLE = frozenset({"learning_rate", "b1", "b2", "eps", "decay"})


def make_optimizer(section: Mapping[str, Any], total_updates: int,
                   what: str = "optimizer", injected: tuple[str, ...] = ()
                   ) -> optax.GradientTransformation:
  """Builds the optax optimizer a config section describes.

  Args:
    section: ``name``, ``learning_rate``, optional ``schedule`` (default 'constant') and the
      options of the named optimizer and schedule.
    total_updates: how many updates this optimizer makes in the whole run (the schedules'
      fractions refer to it).
    what: the section's name, for error messages.
    injected: options (of `injectable_options`) kept as arrays in the optimizer state through
      `optax.inject_hyperparams`, so that states of one optimizer can hold different values
      (members of a population, `jax.vmap`-ed). A schedule then multiplies the updates by
      ``schedule(t) / learning_rate`` (every schedule here is the learning rate times a factor
      of t), so the injected rate stays a plain number.
  """
  options = dict(section)
  name = options.pop("name", None)
  schedule_name = options.pop("schedule", "constant")
  if name not in OPTIMIZERS:
    raise ConfigError(f"{what}: unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
  if schedule_name not in SCHEDULES:
    raise ConfigError(f"{what}: unknown schedule {schedule_name!r}; choose one of "
                     f"{sorted(SCHEDULES)}")
  if "learning_rate" not in options:
    raise ConfigError(f"{what}: learning_rate is required")
  learning_rate = options.pop("learning_rate")
  opt_fn, sched_fn = OPTIMIZERS[name], SCHEDULES[schedule_name]
  opt_keys, sched_keys = _options_of(opt_fn), _options_of(sched_fn)
  unknown = sorted(set(options) - opt_keys - sched_keys)
  if unknown:
    raise ConfigError(f"{what}: {unknown} is not an option of optimizer {name!r} "
                     f"({sorted(opt_keys)}) or schedule {schedule_name!r} ({sorted(sched_keys)})")
  schedule = sched_fn(learning_rate, total_updates,
                      **{k: v for k, v in options.items() if k in sched_keys})
  opt_options = {k: v for k, v in options.items() if k in opt_keys}
  if injected:
    return _injected(opt_fn, learning_rate, opt_options, schedule_name, schedule,
                     tuple(injected), what, name)
  rate = learning_rate if schedule_name == "constant" else schedule
  return opt_fn(rate, **opt_options)


def _injected(opt_fn, learning_rate: float, opt_options: dict[str, Any], schedule_name: str,
              schedule: Schedule, injected: tuple[str, ...], what: str,
              name: str) -> optax.GradientTransformation:
  bad = sorted(set(injected) - injectable_options(name))
  if bad:
    raise ConfigError(f"{what}: {bad} cannot be held in the state of optimizer {name!r}; "
                      f"these can: {sorted(injectable_options(name))}")
  static = tuple(sorted(_options_of(opt_fn) - set(injected)))  # defaults too: code switches
  tx = optax.inject_hyperparams(opt_fn, static_args=static)(learning_rate, **opt_options)
  if schedule_name == "constant":
    return tx
  factor = lambda count: schedule(count) / learning_rate
  return optax.chain(tx, optax.scale_by_schedule(factor))
