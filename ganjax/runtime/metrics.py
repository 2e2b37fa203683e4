"""Step metrics on the host: reading them one step late, averaging them, writing them.

`MetricsInFlight` reads each step's device metrics while the next step runs and stops the run at
the first non-finite value; `MetricLog` averages them between console lines and formats the line
``step 500/100000 | d_loss=1.21 g_loss=0.93 | 3.1 steps/s | ETA 08:52:10``; `make_writer` is
the clu metric writer of a run (TensorBoard on process 0, nothing elsewhere).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping

from clu import metric_writers
import jax
import numpy as np

from ganjax.errors import NonFiniteLossError
from ganjax.runtime import files
from ganjax.runtime.metric_kinds import METRICS_FILE, kind_of

Metrics = dict[str, float]


@dataclasses.dataclass
class MetricLog:
  """Accumulates per-step metrics between console/TensorBoard lines."""

  total_steps: int
  sums: dict[str, float] = dataclasses.field(default_factory=dict)
  count: int = 0
  last_time: float = dataclasses.field(default_factory=time.monotonic)
  last_step: int = 0

  def add(self, metrics: Metrics) -> None:
    for k, v in metrics.items():
      self.sums[k] = self.sums.get(k, 0.0) + v
    self.count += 1

  def restart_clock(self, step: int) -> None:
    self.last_time, self.last_step = time.monotonic(), step

  def flush(self, step: int) -> tuple[Metrics, float]:
    """The means since the last flush and the steps per second since the clock last started
    (NaN when no step has been timed: the first step after a start includes compilation)."""
    now = time.monotonic()
    steps = step - self.last_step
    rate = steps / max(now - self.last_time, 1e-9) if steps > 0 else float("nan")
    means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
    self.sums, self.count, self.last_time, self.last_step = {}, 0, now, step
    return means, rate

  def line(self, step: int, means: Metrics, rate: float) -> str:
    keys = sorted(means, key=lambda k: (not k.endswith("loss"), k))
    values = " ".join(f"{k}={means[k]:.4g}" for k in keys)
    if not rate > 0:  # NaN: nothing timed yet
      return f"step {step}/{self.total_steps} | {values} | ? steps/s | ETA ?"
    eta = (self.total_steps - step) / rate
    eta_text = (f"{eta / 86400:.1f}d" if eta >= 86400 else
                time.strftime("%H:%M:%S", time.gmtime(eta)))
    return f"step {step}/{self.total_steps} | {values} | {rate:.3g} steps/s | ETA {eta_text}"


def host_metrics(metrics: dict[str, jax.Array]) -> Metrics:
  """A step's metrics as Python floats, by name."""
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


class MetricsInFlight:
  """Device metrics of steps whose values the host has not read yet.

  The loop `push`es each step's metrics right after dispatching it and `drain`s up to the
  previous step, so one step stays in flight while the host reads the last one. `drain(upto)`
  reads the pending steps <= `upto` in order with `to_values`, raises `NonFiniteLossError` at the
  first non-finite metric (naming it, its step and `checkpoint_text()`), and adds the values to
  each of `logs`.
  """

  def __init__(self, logs: list[MetricLog], checkpoint_text: Callable[[], str],
               to_values: Callable[[dict[str, jax.Array]], Metrics] = host_metrics):
    self.to_values, self.logs, self.checkpoint_text = to_values, logs, checkpoint_text
    self.pending: list[tuple[int, dict[str, jax.Array]]] = []

  def push(self, step: int, metrics: dict[str, jax.Array]) -> None:
    self.pending.append((step, metrics))

  def drain(self, upto: int) -> None:
    while self.pending and self.pending[0][0] <= upto:
      step, metrics = self.pending.pop(0)
      values = self.to_values(metrics)
      bad = sorted(k for k, v in values.items() if not np.isfinite(v))
      if bad:
        raise NonFiniteLossError(f"non-finite {', '.join(bad)} at step {step}; "
                                 f"{self.checkpoint_text()}")
      for log in self.logs:
        log.add(values)


class MemberWriters(metric_writers.MetricWriter):
  """Routes ``member_<i>/<name>`` scalars and images to ``members[i]`` as ``<name>``, the rest
  to `main`: one TensorBoard run per member of a population."""

  def __init__(self, main: metric_writers.MetricWriter,
               members: list[metric_writers.MetricWriter]):
    self.main, self.members = main, members

  def _split(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rest, per_member = {}, [{} for _ in self.members]
    for key, value in values.items():
      head, _, name = key.partition("/")
      index = head[len("member_"):]
      if head.startswith("member_") and name and index.isdigit():
        per_member[int(index)][name] = value
      else:
        rest[key] = value
    return rest, per_member

  def _write(self, method: str, step: int, values: dict[str, Any]) -> None:
    rest, per_member = self._split(values)
    if rest:
      getattr(self.main, method)(step, rest)
    for writer, member_values in zip(self.members, per_member):
      if member_values:
        getattr(writer, method)(step, member_values)

  def write_scalars(self, step, scalars):
    self._write("write_scalars", step, scalars)

  def write_images(self, step, images):
    self._write("write_images", step, images)

  def write_texts(self, step, texts):
    self._write("write_texts", step, texts)

  def write_summaries(self, step, values, metadata=None):
    self.main.write_summaries(step, values, metadata)

  def write_videos(self, step, videos):
    self.main.write_videos(step, videos)

  def write_audios(self, step, audios, *, sample_rate):
    self.main.write_audios(step, audios, sample_rate=sample_rate)

  def write_histograms(self, step, arrays, num_buckets=None):
    self.main.write_histograms(step, arrays, num_buckets)

  def write_hparams(self, hparams):
    self.main.write_hparams(hparams)

  def flush(self):
    for writer in [self.main, *self.members]:
      writer.flush()

  def close(self):
    for writer in [self.main, *self.members]:
      writer.close()


class JsonlWriter(metric_writers.MetricWriter):
  """Scalars as JSON lines in ``WORKDIR/metrics.jsonl``, one object per write:
  ``{"step": 500, "time": <unix seconds>, "kind": "train" | "eval", "<name>": value, ...}``
  (the format `ganjax.report` reads). Other summaries (images, texts, hparams) are not written.

  `truncate_after(step)` drops the lines of steps after `step` (and any line cut short by a
  kill) when a run resumes from the checkpoint of `step`, so every logged step appears once:
  the steps after the checkpoint are trained, and logged, again.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, METRICS_FILE)

  def truncate_after(self, step: int) -> None:
    if not os.path.exists(self.path):
      return
    kept = []
    with open(self.path, encoding="utf-8", errors="replace") as f:
      for line in f:
        try:
          entry = json.loads(line)
        except ValueError:
          continue  # a line cut short
        if isinstance(entry, dict) and isinstance(entry.get("step"), int) and \
            entry["step"] <= step:
          kept.append(line if line.endswith("\n") else line + "\n")
    files.write_text(self.path, "".join(kept))

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    values = {k: float(v) for k, v in scalars.items()}
    kinds = {kind_of(k) for k in values}
    for kind in sorted(kinds):
      line = {"step": int(step), "time": time.time(), "kind": kind,
              **{k: v for k, v in values.items() if kind_of(k) == kind}}
      with open(self.path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, allow_nan=True) + "\n")

  def write_summaries(self, step, values, metadata=None):
    pass

  def write_images(self, step, images):
    pass

  def write_videos(self, step, videos):
    pass

  def write_audios(self, step, audios, *, sample_rate):
    pass

  def write_texts(self, step, texts):
    pass

  def write_histograms(self, step, arrays, num_buckets=None):
    pass

  def write_hparams(self, hparams):
    pass

  def flush(self):
    pass

  def close(self):
    pass


def make_writer(workdir: str, is_chief: bool, members: int = 0
                ) -> tuple[metric_writers.MetricWriter, JsonlWriter | None]:
  """The metric writer of a run and its `JsonlWriter` (None off the chief process).

  On the chief: TensorBoard events in `workdir` (and, for a population of `members`, member i's
  in ``workdir/member_<i>``) and ``workdir/metrics.jsonl``; elsewhere a writer that drops all.

  All the TensorBoard files are written by one background thread, in order: TensorFlow's API
  dispatch keeps each function's canonicalized arguments in storage the function shares with
  every thread (`PythonAPIDispatcher`), so two threads in the same summary op at once can read
  each other's freed arguments and crash the process (one writer thread per member did, about
  once in a hundred population runs).
  """
  if not is_chief:
    return metric_writers.MultiWriter([]), None
  summaries = metric_writers.SummaryWriter(workdir)
  if members:
    summaries = MemberWriters(summaries, [
        metric_writers.SummaryWriter(os.path.join(workdir, f"member_{i}")) for i in range(members)])
  events = metric_writers.AsyncWriter(summaries)
  jsonl = JsonlWriter(workdir)
  return metric_writers.MultiWriter([events, jsonl]), jsonl


def flatten_config(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
  """``{'a': {'b': 1}}`` -> ``[('a.b', 1)]``."""
  out = []
  for k, v in d.items():
    if isinstance(v, dict):
      out.extend(flatten_config(v, f"{prefix}{k}."))
    else:
      out.append((f"{prefix}{k}", v))
  return out
