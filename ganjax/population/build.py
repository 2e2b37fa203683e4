"""Population training: K GANs of one architecture trained by one compiled step (`jax.vmap`).

``config.population``:

* ``size``: K, the number of members (0 or 1: an ordinary single run);
* ``sweep``: config keys with K values each, member i taking value i, written
  ``"KEY=V0,V1,...;KEY=..."`` (a string, so that it works as a command-line override), e.g.
  ``"g_optimizer.learning_rate=1e-4,2e-4;gradient_penalty=1,10"`` (`parse_sweep`);
* ``same_batches``: every member trains on the same real batches (those of ``config.seed``), or
  (False) each on its own data order.

Member i is the single run of `member_config(config, i)`: seed ``config.seed + i`` (parameters,
step randomness and, without same_batches, data order) and the swept values. The population's
state is the members' `GANState`s stacked on a leading axis; its step is
``jax.vmap(train_step)`` over that axis. A swept value is a real per-member value inside the
one compiled program: optimizer hyperparameters live in the optimizer state
(`optax.inject_hyperparams`, see `ganjax.gan.optim.make_optimizer`), and the step's scalar weights
(`ganjax.gan.steps.HYPERPARAMETERS`) are arrays of the step's ``hyper`` argument. What would change
the program (widths, n_critic, batch size, the loss) cannot be swept.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ganjax.data.spec import DataSpec
from ganjax.gan import optim, steps
from ganjax.errors import ConfigError
from ganjax.gan.build import GAN, build_gan
from ganjax.gan.state import GANState

PyTree = Any
OPTIMIZER_SECTIONS = {"g_optimizer": "num_train_steps", "d_optimizer": "critic_updates"}


@dataclasses.dataclass(frozen=True)
class Population:
  """The population a config asks for."""

  size: int
  sweep: dict[str, tuple[float, ...]]
  same_batches: bool

  def values(self, member: int) -> dict[str, float]:
    """Member `member`'s values of the swept keys."""
    return {k: v[member] for k, v in self.sweep.items()}


def parse_sweep(text: str) -> dict[str, tuple[str, ...]]:
  """``"a.b=1,2;c=3,4"`` -> ``{"a.b": ("1", "2"), "c": ("3", "4")}``."""
  sweep = {}
  for entry in filter(None, (e.strip() for e in text.split(";"))):
    key, sep, values = entry.partition("=")
    if not sep or not key.strip() or not values.strip():
      raise ConfigError(f"population.sweep: {entry!r} is not KEY=V0,V1,... (entries are "
                        "separated by ';')")
    if key.strip() in sweep:
      raise ConfigError(f"population.sweep: {key.strip()!r} is given twice")
    sweep[key.strip()] = tuple(v.strip() for v in values.split(","))
  return sweep


def _number(key: str, text: str) -> float:
  try:
    return float(text)
  except ValueError:
    raise ConfigError(f"population.sweep: {key!r} needs numbers, got {text!r}") from None


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
  node = config
  for part in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise ConfigError(f"population.sweep: unknown config key {key!r}")
    node = node[part]
  return node


def _with_values(config: ml_collections.ConfigDict, values: dict[str, float],
                 **top: Any) -> ml_collections.ConfigDict:
  """A single-run copy of `config` with dotted `values` (and top-level `top`) set."""
  tree = config.to_dict()
  tree.update(top, population=dict(size=0, sweep="", same_batches=False))
  for key, value in values.items():
    *path, leaf = key.split(".")
    node = tree
    for part in path:
      node = node[part]
    node[leaf] = value
  return ml_collections.ConfigDict(tree)


def sweepable_keys(config: ml_collections.ConfigDict) -> list[str]:
  """The config keys whose value can differ between the members of one compiled program."""
  keys = list(steps.HYPERPARAMETERS)
  for section in OPTIMIZER_SECTIONS:
    name = config[section].name
    if name in optim.OPTIMIZERS:
      keys += [f"{section}.{k}" for k in sorted(optim.injectable_options(name))]
  return keys


def population_of(config: ml_collections.ConfigDict) -> Population | None:
  """The validated population of `config`, or None for a single run (size 0 or 1).

  Raises a one-line ConfigError for an unknown sweep key, a key that cannot vary inside one
  program, or a list of values whose length is not the size.
  """
  section = config.population
  size = section.size
  if size < 0:
    raise ConfigError(f"population.size must be 0 (off) or a number of members, got {size}")
  sweep = parse_sweep(section.sweep)
  if size <= 1:
    if sweep:
      raise ConfigError("population.sweep needs population.size > 1")
    return None
  allowed = sweepable_keys(config)
  checked = {}
  for key, values in sweep.items():
    _get(config, key)
    if key not in allowed:
      raise ConfigError(f"population.sweep: {key!r} cannot differ between the members of one "
                        f"compiled program; these can: {allowed}")
    if len(values) != size:
      raise ConfigError(f"population.sweep: {key!r} has {len(values)} values for "
                        f"population.size={size} members")
    checked[key] = tuple(_number(key, v) for v in values)
  return Population(size, checked, bool(section.same_batches))


def member_config(config: ml_collections.ConfigDict, member: int) -> ml_collections.ConfigDict:
  """The config of the single run that member `member` of the population trains."""
  population = population_of(config)
  if population is None:
    raise ConfigError("this run is not a population (population.size is 0 or 1)")
  if not 0 <= member < population.size:
    raise ConfigError(f"member {member} does not exist; the population has members 0 to "
                      f"{population.size - 1}")
  return _with_values(config, population.values(member), seed=config.seed + member)


@dataclasses.dataclass(frozen=True)
class PopulationGAN:
  """The pure pieces of a population: stacked init, vmapped train step and sampling.

  Attributes:
    gan: the shared models and step; its optimizers hold the swept optimizer options in their
      state, and the penalties some member uses are switched on (weight 0 for the others).
    population: size, sweep and batch sharing.
    seeds: member i's seed.
    hyper: the step's per-member scalar weights, name -> float32 [K].
    optimizer_values: per optimizer section, option -> float32 [K] (written into the states).
  """

  gan: GAN
  population: Population
  seeds: tuple[int, ...]
  hyper: dict[str, np.ndarray]
  optimizer_values: dict[str, dict[str, np.ndarray]]

  @property
  def size(self) -> int:
    return self.population.size

  def rngs(self) -> jax.Array:
    """The members' base keys, [K, 2]: ``PRNGKey(seed + i)``."""
    return jnp.stack([jax.random.PRNGKey(s) for s in self.seeds])

  def init(self, rngs: jax.Array) -> GANState:
    """The stacked initial state of all members (pure; jit it)."""
    state = jax.vmap(self.gan.init)(rngs)
    players = {"g_optimizer": "generator", "d_optimizer": "discriminator"}
    for section, values in self.optimizer_values.items():
      player = getattr(state, players[section])
      opt_state = optax.tree_utils.tree_set(
          player.opt_state, **{k: jnp.asarray(v, jnp.float32) for k, v in values.items()})
      state = state.replace(**{players[section]: player.replace(opt_state=opt_state)})
    return state

  def train_step(self) -> Callable[..., Any]:
    """``step(states, batches, hyper) -> (states, metrics)`` over the member axis.

    `batches` has a leading member axis unless ``same_batches``; metrics are [K] arrays.
    """
    batch_axis = None if self.population.same_batches else 0
    return jax.vmap(self.gan.train_step(), in_axes=(0, batch_axis, 0))

  def sample_fn(self) -> Callable[..., jax.Array]:
    """``sample(stacked variables, z, labels) -> [K, B, H, W, C]``: every member, same latents."""
    return jax.vmap(self.gan.sample_fn(), in_axes=(0, None, None))


def _base_config(config: ml_collections.ConfigDict,
                 population: Population) -> ml_collections.ConfigDict:
  """Member 0's config, with each swept step weight at a nonzero value when any member's is."""
  values = population.values(0)
  for key, member_values in population.sweep.items():
    if key in steps.HYPERPARAMETERS:
      values[key] = next((v for v in member_values if v), 0.0)
  return _with_values(config, values, seed=config.seed)


def build_population(config: ml_collections.ConfigDict, data: DataSpec,
                     batch_sharding: jax.sharding.Sharding | None = None,
                     conv_backend: str = "auto") -> PopulationGAN:
  """Builds the population `config` describes (see `population_of` for its errors);
  `batch_sharding` and `conv_backend` as in `ganjax.gan.build.build_gan`."""
  population = population_of(config)
  if population is None:
    raise ConfigError("population.size must be at least 2 for a population")
  base = _base_config(config, population)
  gan = build_gan(base, data, batch_sharding, conv_backend)
  total_updates = {"num_train_steps": base.num_train_steps,
                   "critic_updates": base.num_train_steps * base.n_critic}
  optimizer_values, txs = {}, {}
  for section, updates in OPTIMIZER_SECTIONS.items():
    swept = {k.split(".", 1)[1]: np.asarray(v, np.float32)
             for k, v in population.sweep.items() if k.startswith(section + ".")}
    if swept:
      optimizer_values[section] = swept
      txs[section[0] + "_tx"] = optim.make_optimizer(
          base[section].to_dict(), total_updates[updates], section, injected=tuple(swept))
  hyper = {k: np.asarray(v, np.float32) for k, v in population.sweep.items()
           if k in steps.HYPERPARAMETERS}
  return PopulationGAN(dataclasses.replace(gan, **txs), population,
                       tuple(config.seed + i for i in range(population.size)), hyper,
                       optimizer_values)


def member_state(state: GANState, member: int) -> GANState:
  """Member `member`'s state out of a population's stacked state."""
  return jax.tree.map(lambda x: x[member], state)


def summarize(metrics: list[dict[str, float]]) -> dict[str, dict[str, float]]:
  """Mean and standard deviation (population, ddof 0) across members of each metric."""
  keys = sorted(set().union(*metrics)) if metrics else []
  values = {k: np.asarray([m[k] for m in metrics if k in m], np.float64) for k in keys}
  return {"mean": {k: float(v.mean()) for k, v in values.items()},
          "std": {k: float(v.std()) for k, v in values.items()}}
