"""Training throughput of CLI runs, read from their logs (``python -m ganjax.main ... 2> LOG``).

  python -m experiments.zoo_throughput runs/sngan.log runs/sagan.log ...

Prints, per log, the steps/s of each console line after the first (the first step includes
compilation and is reported separately by the trainer), their median, and images/s at the run's
batch size. The machine may be shared: compare runs measured at the same time.
"""

from __future__ import annotations

import re
import statistics
import sys

LINE = re.compile(r"step (\d+)/(\d+) \|.*\| ([0-9.e+-]+) steps/s")
FIRST = re.compile(r"step (\d+) took ([0-9.]+) s \(including compilation\)")
BATCH = re.compile(r"batch_size: (\d+)")


def summarize(path: str) -> str:
  with open(path) as f:
    text = f.read()
  # A console line on the first step of a (resumed) run has no interval to measure: its rate
  # is "?" (0 in older logs), and it is left out.
  rates = [(int(m.group(1)), float(m.group(3))) for m in LINE.finditer(text)
           if float(m.group(3)) > 0]
  first = [f"step {m.group(1)}: {float(m.group(2)):.0f} s" for m in FIRST.finditer(text)]
  batch = int(BATCH.search(text).group(1)) if BATCH.search(text) else 0
  if not rates:
    return f"{path}: no console lines yet ({'; '.join(first) or 'not started'})"
  median = statistics.median(r for _, r in rates)
  per_line = ", ".join(f"{s}:{r:.3g}" for s, r in rates)
  images = f", {median * batch:.3g} images/s (batch {batch} x steps/s)" if batch else ""
  return (f"{path}: median {median:.3g} steps/s ({1 / median:.0f} s/step){images}; "
          f"lines {per_line}; first steps incl. compilation: {'; '.join(first)}")


def main(paths: list[str]) -> None:
  if paths and paths[0] in ("-h", "--help"):
    print(__doc__)
    return
  if not paths:
    sys.exit(__doc__)
  for path in paths:
    print(summarize(path))


if __name__ == "__main__":
  main(sys.argv[1:])
