"""`ganjax.runtime.host_memory`: executions reuse the host memory the previous one freed."""

import json
import platform
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

# A tool's process: `ganjax.cli` first, then JAX. An execution with a temporary (96 MB) larger
# than a thread arena's heap, as a training step has: the page faults of each of 30 executions,
# over the pages of that temporary, and the resident memory (MB) after each.
_SCRIPT = """
import json, resource
from ganjax import cli
import jax, jax.numpy as jnp
n = 24 * 2**20
f = jax.jit(lambda x, w: (x * 2.0 + 1.0).reshape(4096, -1) @ w)
x, w = jnp.ones((n,), jnp.float32), jnp.ones((n // 4096, 8), jnp.float32)
faults, resident = [], []
for _ in range(30):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  y = f(x, w)
  assert float(y[0, 0]) == 3.0 * (n // 4096)
  faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (4 * n / 4096))
  resident.append(int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20)
print(json.dumps({"status": cli.HOST_MEMORY, "fault_fractions": faults, "resident": resident}))
"""


def _run(**env: str) -> dict:
  out = subprocess.run([sys.executable, "-c", _SCRIPT], env=subprocess_env(**env),
                       capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc's allocator")
def test_executions_reuse_freed_host_memory_instead_of_faulting_it_in():
  tuned = _run()
  assert tuned["status"].startswith("host memory: freed blocks are reused"), tuned
  # Once reuse settles (a few executions) the freed temporary comes back, already mapped: at
  # least 8 of the last 10 executions fault on almost none of its pages (now and then one or
  # two fault on all of them again: 1 process in 12 on the 2-core test host) ...
  assert sorted(tuned["fault_fractions"][-10:])[7] < 0.1, tuned
  # ... and the heap holds a few temporaries, not one per execution (1-8 over the 30
  # executions, 12 processes on that host; glibc's timing decides when reuse settles).
  assert tuned["resident"][-1] - tuned["resident"][0] < 16 * 96, tuned
  # With glibc's defaults every execution maps its output afresh and faults on each page.
  default = _run(GANJAX_REUSE_HOST_MEMORY="0")
  assert default["status"] == "host memory: glibc's defaults (GANJAX_REUSE_HOST_MEMORY=0)"
  assert min(default["fault_fractions"]) > 0.9, default
