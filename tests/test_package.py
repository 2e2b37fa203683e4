"""The package's shape: every module imports, no import cycle, every config key declared once and
overridable from the command line, no library read of an undeclared key."""

import ast
import importlib
import os
import pkgutil

from absl import flags
from ml_collections import config_flags
import ml_collections
import pytest

import ganjax
from ganjax import configs
from ganjax.cli import train as train_cli
from ganjax.configs import default
from tests.conftest import REPO_ROOT

PACKAGE_DIR = os.path.join(REPO_ROOT, "ganjax")
# ConfigDict methods, not keys.
CONFIG_METHODS = frozenset(dir(ml_collections.ConfigDict))


def _modules() -> dict[str, str]:
  """Every module of the package: dotted name -> file."""
  out = {"ganjax": os.path.join(PACKAGE_DIR, "__init__.py")}
  for info in pkgutil.walk_packages([PACKAGE_DIR], prefix="ganjax."):
    spec = importlib.util.find_spec(info.name)
    if spec.origin and spec.origin.endswith(".py"):
      out[info.name] = spec.origin
  return out


MODULES = _modules()


def _top_level_imports(path: str, module: str) -> set[str]:
  """The ganjax modules `module` imports when it is imported (not inside functions, nor under
  ``if __name__ == '__main__'``)."""
  tree = ast.parse(open(path).read())
  package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
  found = set()
  for node in tree.body:
    if isinstance(node, ast.Import):
      found |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] +
                        ([base] if base else []))
      # ``from pkg import submodule`` needs the submodule, not the package's body.
      for alias in node.names:
        found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
  return {name for name in found if name in MODULES}


def test_every_module_imports():
  for name in MODULES:
    if name.endswith("__main__"):
      continue
    importlib.import_module(name)


def test_no_import_cycle_inside_the_package():
  graph = {m: _top_level_imports(path, m) - {m} for m, path in MODULES.items()}
  state, cycles = {}, []

  def visit(node, stack):
    state[node] = "open"
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        cycles.append(stack[stack.index(nxt):] + [nxt])
      elif nxt not in state:
        visit(nxt, stack + [nxt])
    state[node] = "done"

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])
  assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
  # The layers: the runtime and the pure GAN core import no task assembly.
  for module, imports in graph.items():
    if module.startswith(("ganjax.runtime", "ganjax.models", "ganjax.ops", "ganjax.data")):
      assert not {i for i in imports if i.startswith(("ganjax.tasks", "ganjax.cli"))
                  or i.endswith(".trainer")}, (module, imports)


def test_old_module_paths_still_import():
  with pytest.warns(DeprecationWarning, match="moved to ganjax.gan.steps"):
    from ganjax import steps  # pylint: disable=g-import-not-at-top
  assert steps.make_train_step is importlib.import_module("ganjax.gan.steps").make_train_step
  with pytest.raises(AttributeError):
    ganjax.no_such_module  # pylint: disable=pointless-statement


def _flat(config: ml_collections.ConfigDict, prefix: str = "") -> dict:
  out = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _other_value(value):
  """A command-line value of the same type as `value`, different from it."""
  if isinstance(value, bool):
    return not value
  if isinstance(value, int):
    return value + 3
  if isinstance(value, float):
    return value * 2 + 0.25
  return f"{value}x"


def test_every_shipped_config_takes_every_default_key_from_the_command_line():
  """Each config file parsed with all keys of the default config overridden at once."""
  defaults = _flat(default.get_config())
  assert configs.names() == sorted(["acgan", "biggan", "biggan_ada", "biggan_diffaug", "cgan",
                                    "classifier", "dcgan", "sagan", "sngan",
                                    "sngan_diffaug_lecam", "wgan", "wgan_gp", "wgan_gp_acgan"])
  for name in configs.names():
    config = importlib.import_module(f"ganjax.configs.{name}").get_config()
    flat = _flat(config)
    missing = sorted(set(defaults) - set(flat))
    assert not missing, f"{name} drops default keys {missing}"
    # A key a config leaves open (None) takes a value of the default's type.
    wanted = {key: _other_value(defaults[key] if flat[key] is None else flat[key])
              for key in defaults}
    argv = train_cli._resolve_config(  # pylint: disable=protected-access
        ["prog", f"--config={name}"] + [f"--config.{k}={v}" for k, v in wanted.items()])
    flag_values = flags.FlagValues()  # as the command line defines it, overrides from argv
    config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values,
                                    lock_config=True, sys_argv=argv)
    flag_values(argv)
    parsed = _flat(flag_values.config)
    for key, value in wanted.items():
      assert parsed[key] == pytest.approx(value) if isinstance(value, float) else \
          parsed[key] == value, (name, key, parsed[key], value)


def test_config_names_and_paths_resolve():
  assert configs.resolve("wgan") == os.path.join(configs.DIRECTORY, "wgan.py")
  assert configs.resolve("wgan:arg") == os.path.join(configs.DIRECTORY, "wgan.py") + ":arg"
  assert configs.resolve("configs/wgan.py") == "configs/wgan.py"
  assert configs.resolve("my_config.py") == "my_config.py"


def _config_reads(path: str) -> list[tuple[int, list[str]]]:
  """Attribute chains read from names that hold a config (``config.a.b``), with line numbers."""
  reads = []
  for node in ast.walk(ast.parse(open(path).read())):
    if not isinstance(node, ast.Attribute):
      continue
    chain, base = [], node
    while isinstance(base, ast.Attribute):
      chain.insert(0, base.attr)
      base = base.value
    if isinstance(base, ast.Name) and base.id.endswith("config") and base.id != "jax_config":
      reads.append((node.lineno, chain))
  return reads


def test_library_code_reads_only_declared_config_keys():
  declared = default.get_config()
  problems = []
  for module, path in MODULES.items():
    source = open(path).read()
    if "config.get(" in source:
      problems.append(f"{module}: config.get(...) repeats a default")
    if module.startswith("ganjax.configs"):
      continue  # the configs set keys; they read none
    for line, chain in _config_reads(path):
      node, seen = declared, []
      for attr in chain:
        if attr in CONFIG_METHODS or not isinstance(node, ml_collections.ConfigDict):
          break
        seen.append(attr)
        if attr not in node:
          problems.append(f"{module}:{line} reads undeclared config key {'.'.join(seen)!r}")
          break
        node = node[attr]
  assert not problems, "\n".join(problems)
