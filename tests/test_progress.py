"""Progress lines of the long passes (ganjax.runtime.progress)."""

import re

from ganjax.runtime.progress import Progress, counted, format_duration


class Clock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_lines_at_most_every_30_seconds_with_rate_and_eta():
  clock, lines = Clock(), []
  progress = Progress("features", 1000, log=lines.append, clock=clock)
  times = []
  for _ in range(100):  # 10 images every 3 s: 3.33 images/s, 300 s in all
    clock.now += 3.0
    progress.update(10)
    if len(lines) > len(times):
      times.append(clock.now)
  gaps = [b - a for a, b in zip([100.0] + times, times)]
  assert max(gaps) <= 30.0 and len(lines) >= 10
  first = re.fullmatch(r"features: (\d+)/1000 images \(([\d.]+)%\) \| ([\d.]+) images/s \| "
                       r"ETA (\S+)", lines[0])
  assert first, lines[0]
  done = int(first.group(1))
  assert float(first.group(3)) == 3.3  # 10 images / 3 s
  assert first.group(4) == format_duration((1000 - done) / (10 / 3))
  assert lines[-1] == "features: 1000/1000 images (100.0%) | 3.3 images/s | took 5m00s"


def test_counted_counts_each_batch_after_its_use():
  lines = []
  batches = [list(range(4))] * 3
  out = list(counted(iter(batches), "x", 12, log=lines.append))
  assert out == batches and lines[-1].startswith("x: 12/12 images (100.0%)")


def test_format_duration():
  assert [format_duration(s) for s in (0, 59.6, 61, 3600 + 62)] == ["0s", "1m00s", "1m01s",
                                                                     "1h01m02s"]
