"""Test setup: quiet TensorFlow, a shared JAX compilation cache, tiny shared models."""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Compiled programs are cached on disk and shared by the tests, the pytest-xdist workers (they
# inherit this environment) and the processes tests start
# (a fresh cache per session unless JAX_COMPILATION_CACHE_DIR is set).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="ganjax-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
# Most of the suite's time is XLA compiling tiny models: at backend optimization level 0 the
# same programs compile about twice as fast (and run slower, which tiny models do not notice).
# The level changes LLVM's code generation, not the programs; results can differ in the last
# bits (another summation order), which float tolerances absorb.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

# torchvision imports torch._dynamo, which imports triton; triton's native library next to
# TensorFlow's (which the data tests load) crashes the process. The CPU references the tests
# compare against need no triton, so it is made unimportable in the test processes.
sys.modules.setdefault("triton", None)

import pytest  # pylint: disable=g-import-not-at-top

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def repo_root() -> str:
  return REPO_ROOT


def subprocess_env(**extra: str) -> dict[str, str]:
  """Environment for a child Python process that imports ganjax from this checkout."""
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  if "XLA_FLAGS" in extra:  # keep this session's flags (TEST_XLA_FLAGS) next to the extra ones
    extra = {**extra, "XLA_FLAGS": f"{env.get('XLA_FLAGS', '')} {extra['XLA_FLAGS']}".strip()}
  env.update(extra)
  return env


sys.path.insert(0, REPO_ROOT)

