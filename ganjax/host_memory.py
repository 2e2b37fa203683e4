"""Keeps freed host memory in the process, so XLA's per-run CPU buffers do not page-fault.

XLA's CPU runtime allocates the temporary buffer of a compiled program (all intermediate
arrays of one run, 258 MiB for the DCGAN training step at batch 64) with ``malloc`` on one of
its worker threads each time the program runs, and frees it when the run ends. glibc serves
an allocation that large on a thread other than the main one with a fresh ``mmap`` (a thread's
arena grows to at most 64 MiB) and hands it back with ``munmap`` on free. So every training
iteration writes into 258 MiB of new pages: 66,000 page faults, each a trap into the kernel
that zero-fills a 4 KiB page, about 180 ms of kernel time per DCGAN iteration on two cores
(``experiments/PERF_NOTES.md``). PyTorch does not pay this: its arrays are separate
allocations below glibc's mmap threshold, which glibc recycles.

`reuse_freed_memory` sets three glibc ``mallopt`` parameters so the buffer is recycled too:

* ``M_ARENA_MAX = 1``: every thread allocates from the main arena, which grows without a cap;
* ``M_MMAP_MAX = 0``: no allocation is served by a private ``mmap``;
* ``M_TRIM_THRESHOLD`` = the largest ``size_t`` (``-1`` through ``mallopt``'s ``int``): free
  memory at the top of the heap is kept for the next allocation, never returned to the system.

The cost: the process's resident memory stays at its peak instead of shrinking between runs,
and threads share one arena's lock. It changes the whole process, so ganjax applies it only
in its own processes (`ganjax.cli`, imported first by every ``python -m ganjax.*`` tool, and
the benchmarks in ``experiments/``), never on ``import ganjax``. In your own training script,
call it first, before JAX runs anything: a thread that already has an arena keeps it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

# glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_NEVER = -1  # mallopt takes an int; glibc reads the trim threshold as size_t: SIZE_MAX

# A user's own malloc settings win: glibc reads these at start-up.
_USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_",
                  "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


@functools.cache
def reuse_freed_memory() -> str:
  """Makes glibc's malloc keep and reuse freed memory in this process; says what it did.

  Returns ``'applied'``, or why nothing was changed (not glibc, the user's own malloc
  settings in the environment or another malloc preloaded, or ``GANJAX_MALLOC=0``). Safe to call more than once.
  """
  if os.environ.get("GANJAX_MALLOC", "1") == "0":
    return "switched off by GANJAX_MALLOC=0"
  user = [name for name in _USER_SETTINGS if os.environ.get(name)]
  if "malloc" in os.environ.get("LD_PRELOAD", ""):  # jemalloc, tcmalloc, mimalloc
    user.append("LD_PRELOAD")
  if user:
    return f"left to the environment's {', '.join(user)}"
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return f"not glibc ({platform.system()} {' '.join(platform.libc_ver()).strip()})"
  libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
  for param, value in ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER)):
    if libc.mallopt(param, value) != 1:
      return f"mallopt({param}, {value}) was refused"
  return "applied"
