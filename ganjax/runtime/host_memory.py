"""Host memory that a CPU program's executions reuse instead of faulting in afresh.

XLA's CPU runtime allocates the buffer of each execution's temporaries with ``malloc`` on one
of its worker threads and frees it when the execution ends (258 MB for the DCGAN step at batch
64, width 64). glibc serves a block that large in a worker thread's arena with an ``mmap`` of
its own (a thread arena's heaps hold at most 64 MB) and ``free`` unmaps it, so every execution
page-faults on each 4 KiB page of its temporaries when it first writes them: about 66,000
faults and 160-190 ms of kernel time per DCGAN iteration on a 2-core host, paid inside the
convolutions and fusions of the step's critical path (docs/PERF_NOTES.md).

`reuse_freed_memory` sets four of glibc's ``mallopt`` parameters so that the next execution
gets the freed block back, its pages already mapped:

* ``M_ARENA_MAX = 1``: every thread allocates from the main arena, whose heap grows without
  that limit (set before other threads first allocate: `ganjax.cli` calls this before
  TensorFlow or JAX start theirs);
* ``M_MMAP_MAX = 0``: no block gets an ``mmap`` of its own;
* ``M_TRIM_THRESHOLD`` (`TRIM_THRESHOLD`): free memory at the top of the heap stays in the
  process;
* ``M_MXFAST = 0``: no "fast bins", whose small free chunks are not merged with their
  neighbours: the small piece an aligned allocation splits off its block would otherwise keep
  the freed block from merging back to the size the next execution asks for, and the heap
  would grow by a few blocks before their reuse settles.

The process then keeps about its peak heap, which the next step needs anyway: for the DCGAN
step 1.35 GB resident against 1.12 GB with glibc's defaults, with no page faults per step
(66,000 before). A program with one large temporary per execution (96 MB in
`tests/test_host_memory.py`) can hold a few such blocks before reuse settles. It changes where
memory comes from, never a value computed. GPU and TPU programs keep their temporaries on the device;
there the settings only change where the host's small allocations come from.

``GANJAX_REUSE_HOST_MEMORY=0`` in the environment keeps glibc's defaults. Other C libraries
(macOS, musl) have no such parameters: nothing is changed there.
"""

from __future__ import annotations

import ctypes
import os
import platform

ENV = "GANJAX_REUSE_HOST_MEMORY"
# glibc's mallopt parameter numbers (<malloc.h>).
M_MXFAST, M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = 1, -1, -4, -8
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes (an int)
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_MXFAST, 0))


def reuse_freed_memory() -> str:
  """Sets glibc's allocator to hand freed memory back to the next allocation (`SETTINGS`);
  returns what was done, one line. Call it before the process starts threads."""
  if os.environ.get(ENV, "1").strip().lower() in ("0", "off", "false", "no"):
    return f"host memory: glibc's defaults ({ENV}=0)"
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return "host memory: the C library's defaults (not glibc)"
  mallopt = ctypes.CDLL(None).mallopt
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  failed = [param for param, value in SETTINGS if mallopt(param, value) != 1]
  if failed:
    return f"host memory: mallopt refused parameters {failed}"
  return ("host memory: freed blocks are reused (one malloc arena, no per-block mmap, "
          "no fast bins)")
