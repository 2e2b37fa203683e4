"""Test setup: quiet TensorFlow, a shared JAX compilation cache, tiny shared models."""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Compiled programs are cached on disk and shared by the tests and the processes they start
# (a fresh cache per session unless JAX_COMPILATION_CACHE_DIR is set).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="ganjax-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import pytest  # pylint: disable=g-import-not-at-top

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def repo_root() -> str:
  return REPO_ROOT


def subprocess_env(**extra: str) -> dict[str, str]:
  """Environment for a child Python process that imports ganjax from this checkout."""
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env.update(extra)
  return env


sys.path.insert(0, REPO_ROOT)
