"""`ganjax.host_memory`: XLA's per-run CPU buffers are recycled instead of page-faulted anew.

The reference is the kernel's own count of minor page faults (``getrusage``) in fresh
processes: without the setting, every run of a program with a 64 MiB intermediate array
faults in about 64 MiB of new pages; with it, almost none.
"""

import json
import subprocess
import sys

import pytest

from ganjax import host_memory
from tests.conftest import subprocess_env

_PROBE = r"""
import json, resource, sys
from ganjax import host_memory
status = host_memory.reuse_freed_memory()
import jax, jax.numpy as jnp
x = jnp.ones((4096, 32), jnp.float32)
f = jax.jit(lambda x: jnp.sum((x @ x.T) @ x))  # x @ x.T: a 4096 x 4096 intermediate
for _ in range(2):
  f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
  f(x).block_until_ready()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(json.dumps({"status": status, "faults": faults}))
"""
_INTERMEDIATE_PAGES = 4096 * 4096 * 4 // 4096  # float32 [4096, 4096] in 4 KiB pages
_USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_",
                  "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "LD_PRELOAD")


def _probe(**env: str) -> dict:
  child_env = {k: v for k, v in subprocess_env(**env).items() if k not in _USER_SETTINGS}
  out = subprocess.run([sys.executable, "-c", _PROBE], env=child_env, capture_output=True,
                       text=True, check=True, timeout=300)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_freed_buffers_are_reused_not_faulted_in_again():
  off = _probe(GANJAX_MALLOC="0")
  on = _probe(GANJAX_MALLOC="1")
  assert off["status"] == "switched off by GANJAX_MALLOC=0"
  assert on["status"] == "applied"
  # Without it, each run touches the intermediate's pages afresh.
  assert off["faults"] > 0.9 * _INTERMEDIATE_PAGES, off
  assert on["faults"] < 0.01 * _INTERMEDIATE_PAGES, on


@pytest.mark.parametrize("name, value", [("MALLOC_ARENA_MAX", "4"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.arena_max=4"),
                                         ("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")])
def test_the_users_own_malloc_settings_win(monkeypatch, name, value):
  monkeypatch.delenv("GANJAX_MALLOC", raising=False)
  monkeypatch.setenv(name, value)
  # The uncached function: nothing is changed in this process on these paths.
  assert host_memory.reuse_freed_memory.__wrapped__() == f"left to the environment's {name}"


def test_switched_off(monkeypatch):
  monkeypatch.setenv("GANJAX_MALLOC", "0")
  assert host_memory.reuse_freed_memory.__wrapped__() == "switched off by GANJAX_MALLOC=0"
