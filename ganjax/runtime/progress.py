"""Progress of a long pass (feature extraction, sampling, reference statistics, metrics).

`Progress` logs one line at the first count ``every_secs`` seconds (default 15) after the last
line while items are counted, so lines come at least every 30 seconds unless one count takes
longer than 15, and always one at the end::

  reference cifar10:train: 12500/50000 images (25.0%) | 41.7 images/s | ETA 15m00s

The timing is clu's `periodic_actions.PeriodicCallback` (``every_secs`` plus the last count as
an ``on_steps`` trigger), the same periodic actions the training loop runs.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Sized, TypeVar

from absl import logging
from clu import periodic_actions

T = TypeVar("T")
EVERY_SECS = 15.0  # a line at the first count after 15 s: lines at most ~30 s apart


def format_duration(seconds: float) -> str:
  """``1h02m03s`` / ``2m03s`` / ``3s``."""
  seconds = max(0, int(round(seconds)))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  if h:
    return f"{h}h{m:02d}m{s:02d}s"
  return f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
  """Counts the items of a pass of known size and logs done / total, rate and ETA.

  Args:
    what: the name of the pass, at the start of each line.
    total: the number of items the pass will count (> 0).
    unit: the items' name in the line.
    every_secs: the longest time between two lines while the pass runs.
    log: where lines go (``absl.logging.info``; tests pass a list's ``append``).
    clock: monotonic time in seconds.
  """

  def __init__(self, what: str, total: int, *, unit: str = "images",
               every_secs: float = EVERY_SECS, log: Callable[[str], None] = logging.info,
               clock: Callable[[], float] = time.monotonic):
    self.what, self.total, self.unit = what, max(int(total), 1), unit
    self.log, self.clock = log, clock
    self.done = 0
    self.start = clock()
    self._callback = periodic_actions.PeriodicCallback(
        every_secs=every_secs, on_steps=[self.total], callback_fn=self._report,
        pass_step_and_time=True)
    self._callback(0, self.start)  # clu's first call only starts the clock

  def line(self, done: int, now: float) -> str:
    """The progress line after `done` items at time `now`."""
    elapsed = max(now - self.start, 1e-9)
    rate = done / elapsed
    text = (f"{self.what}: {done}/{self.total} {self.unit} ({100.0 * done / self.total:.1f}%) "
            f"| {rate:.1f} {self.unit}/s")
    if done < self.total:
      eta = (self.total - done) / rate if rate > 0 else float("inf")
      text += f" | ETA {format_duration(eta) if eta != float('inf') else '?'}"
    else:
      text += f" | took {format_duration(elapsed)}"
    return text

  def _report(self, step: int, t: float) -> None:
    self.log(self.line(step, t))

  def update(self, count: int) -> None:
    """Counts `count` more items (logging when a line is due)."""
    if count <= 0:
      return
    self.done = min(self.done + int(count), self.total)
    self._callback(self.done, self.clock())

  def iterate(self, items: Iterable[T], size: Callable[[T], int] = len) -> Iterator[T]:
    """Yields `items`, counting ``size(item)`` of each after the consumer is done with it."""
    for item in items:
      yield item
      self.update(size(item))


def counted(items: Iterable[T], what: str, total: int, *, unit: str = "images",
            size: Callable[[T], int] | None = None,
            log: Callable[[str], None] = logging.info) -> Iterator[T]:
  """`items` with progress lines: each item counts ``size(item)`` (``len`` by default)."""
  progress = Progress(what, total, unit=unit, log=log)
  return progress.iterate(items, size or _length)


def _length(item: Sized) -> int:
  return len(item)
