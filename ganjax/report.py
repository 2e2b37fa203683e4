"""One self-contained HTML page that summarizes training runs.

  python -m ganjax.report WORKDIR [WORKDIR ...] --out report.html

The page needs nothing but the file: plots are inline SVG (matplotlib, Agg backend), sample
grids are ``data:`` URIs and the only script (the sample sliders) is inline. For each run it
shows the name (the directory's name), the key config values and the full config (collapsed);
with several runs, a table of the config keys that differ between them. Then one plot per
metric group, with one curve per run: losses (``d_loss``, ``g_loss``), D outputs (``d_real``,
``d_fake``), each other training metric and each evaluation metric (``fid``,
``inception_score``, ``kid``, ...) over steps. A population run draws each member's curve thin,
their mean thick and a shaded band of +- one standard deviation around it. Last, per run, the
sample grids with a slider over their steps, the best checkpoint (``best_<metric>.json``, e.g. ``best_fid.json``, else the
latest checkpoint step) and the throughput (median steps per second).

In the SVG, each plot's container has ``data-metric`` (``losses``, ``d_outputs`` or the metric's
name) and each curve the id ``curve:<run>:<metric>`` (``<metric>`` is
``member_<i>/<name>`` or ``mean/<name>`` in a population, whose band is
``band:<run>:std/<name>``); ``<run>`` is the run's name with characters other than letters,
digits, ``_``, ``.`` and ``-`` replaced by ``_``.

What a run directory holds
--------------------------

* ``run_info.json``: ``{"config": {...}, "image_shape": [32, 32, 3], "class_names": [...],
  "data_source": "..."}``; a ``config.population.size`` above 1 is a population of that many
  members.
* ``metrics.jsonl``: the scalars, described below. Older runs have none: then the TensorBoard
  event files (``events.out.tfevents.*``) in the run directory and in ``member_<i>/`` are read
  instead.
* ``samples/step_<step>.png`` (a population: ``samples/member_<i>/step_<step>.png``).
* optional ``best_<eval_best_metric>.json`` (a population: ``member_<i>/best_<...>.json``),
  ``population_summary.json`` and ``checkpoints/<step>/``.

The metrics.jsonl format
------------------------

One JSON object per line, appended as training goes::

  {"step": 500, "time": 1718000000.5, "kind": "train", "d_loss": 1.2, "g_loss": 0.8, ...}
  {"step": 1000, "time": 1718000100.0, "kind": "eval", "fid": 48.1, "inception_score": 5.2, ...}

* ``step`` (int): the generator step the values belong to.
* ``time`` (float): Unix wall-clock seconds when the line was written.
* ``kind``: ``"train"`` (the means over a logging interval: ``d_loss``, ``g_loss``, ``d_real``,
  ``d_fake`` and, where they apply, ``wasserstein``, ``gradient_penalty``, ...;
  ``steps_per_sec``) or ``"eval"`` (``fid``, ``inception_score``, ``inception_score_std`` and,
  where computed, ``kid``, ``precision``, ``recall``, ``density``, ``coverage``,
  ``d_test_class_acc``).
* every other key: a metric name and its value (a number; ``NaN`` is allowed).
* a population writes member i's values as ``member_<i>/<name>``, and their mean and standard
  deviation across members as ``mean/<name>`` and ``std/<name>`` (the report computes them from
  the members where they are missing); ``steps_per_sec`` stays unprefixed.

Several lines of one ``(step, kind)`` merge, later values winning (an evaluation writes its FID /
IS and its test accuracy as two lines). A resumed run first drops the lines of the steps after
its checkpoint (`ganjax.runtime.metrics.JsonlWriter`), so each step is logged once. A line that is not a JSON object (a last line cut short when the process
was killed) is skipped.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import html
import io
import json
import math
import os
import re
import statistics
import sys
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ganjax.errors import ConfigError, GanjaxError
from ganjax.runtime.metric_kinds import EVAL, EVAL_METRICS, METRICS_FILE, TRAIN, kind_of
from ganjax.runtime import checkpoints, files, run_info

POPULATION_SUMMARY_FILE = "population_summary.json"


# Plots of several training metrics: (data-metric, title, metrics).
GROUPS = (("losses", "Losses", ("d_loss", "g_loss")),
          ("d_outputs", "D outputs", ("d_real", "d_fake")))

# Config values shown for each run (those it has), in this order.
KEY_CONFIG = ("dataset", "split", "image_size", "conditional", "batch_size", "num_train_steps",
              "generator.name", "discriminator.name", "loss", "n_critic", "gradient_penalty",
              "r1_penalty", "g_optimizer.name", "g_optimizer.learning_rate",
              "d_optimizer.name", "d_optimizer.learning_rate", "ema_decay", "seed",
              "population.size", "population.sweep")

DEFAULT_MAX_SAMPLE_STEPS = 40

_MEMBER = re.compile(r"member_(\d+)$")
_SAMPLE = re.compile(r"step_(\d+)\.png$")
_POPULATION_HEADS = re.compile(r"(member_\d+|mean|std)/")
_MISSING = object()


# ----------------------------------------------------------------------------------------------
# Metrics


@dataclasses.dataclass
class Metrics:
  """The scalars of one run: one record per ``(step, kind)``, sorted by step then kind.

  Each record is ``{"step": int, "kind": "train" | "eval", "time": float (optional),
  name: value, ...}``, the same as a ``metrics.jsonl`` line.
  """
  records: list[dict[str, Any]]
  source: str = METRICS_FILE  # METRICS_FILE, "events" or "none"
  skipped_lines: int = 0

  def names(self, kind: str | None = None) -> list[str]:
    """The metric names (not ``step``, ``kind``, ``time``) of the records of `kind` (or all)."""
    names = set()
    for record in self.records:
      if kind is None or record["kind"] == kind:
        names.update(k for k in record if k not in ("step", "kind", "time"))
    return sorted(names)

  def series(self, name: str, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The steps and values of metric `name` (in records of `kind`, or any), by step."""
    steps, values = [], []
    for record in self.records:
      if name in record and (kind is None or record["kind"] == kind):
        steps.append(record["step"])
        values.append(record[name])
    return np.asarray(steps, np.int64), np.asarray(values, np.float64)



def _number(value: Any) -> float | None:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  return float(value)


def _sorted_records(by_key: Mapping[tuple[int, str], dict[str, Any]]) -> list[dict[str, Any]]:
  return [by_key[k] for k in sorted(by_key, key=lambda k: (k[0], k[1] != TRAIN, k[1]))]


def read_metrics_jsonl(path: str) -> Metrics:
  """Reads a ``metrics.jsonl`` file: the lines of one ``(step, kind)`` merge, later values
  winning.

  Lines that are not a JSON object with an integer ``step`` (such as a last line cut short)
  are skipped and counted in `Metrics.skipped_lines`; a missing ``kind`` is taken from the
  metric names; values that are not numbers are dropped.
  """
  by_key: dict[tuple[int, str], dict[str, Any]] = {}
  skipped = 0
  with open(path, encoding="utf-8", errors="replace") as f:
    for line in f:
      if not line.strip():
        continue
      try:
        entry = json.loads(line)
      except ValueError:
        skipped += 1
        continue
      step = entry.get("step") if isinstance(entry, dict) else None
      if isinstance(step, float) and step.is_integer():
        step = int(step)
      if isinstance(step, bool) or not isinstance(step, int):
        skipped += 1
        continue
      values = {k: v for k, v in ((k, _number(v)) for k, v in entry.items()
                                  if k not in ("step", "kind", "time")) if v is not None}
      kind = entry.get("kind")
      if kind not in (TRAIN, EVAL):
        kind = EVAL if any(kind_of(k) == EVAL for k in values) else TRAIN
      record: dict[str, Any] = {"step": step, "kind": kind}
      time = _number(entry.get("time"))
      if time is not None:
        record["time"] = time
      record.update(values)
      by_key.setdefault((step, kind), {}).update(record)
  return Metrics(_sorted_records(by_key), METRICS_FILE, skipped)


def _event_files(directory: str) -> list[str]:
  if not os.path.isdir(directory):
    return []
  names = [n for n in os.listdir(directory) if n.startswith("events.out.tfevents.")
           and os.path.isfile(os.path.join(directory, n))]

  def order(name: str) -> tuple[int, str]:
    stamp = name[len("events.out.tfevents."):].split(".", 1)[0]
    return (int(stamp) if stamp.isdigit() else 0, name)

  return [os.path.join(directory, n) for n in sorted(names, key=order)]


def _member_dirs(workdir: str) -> list[tuple[int, str]]:
  members = []
  for name in os.listdir(workdir):
    match = _MEMBER.match(name)
    if match and os.path.isdir(os.path.join(workdir, name)):
      members.append((int(match.group(1)), os.path.join(workdir, name)))
  return sorted(members)


def read_event_files(workdir: str) -> Metrics:
  """Reads the scalars of TensorBoard event files, for runs that have no ``metrics.jsonl``.

  Reads ``WORKDIR/events.out.tfevents.*`` and, as ``member_<i>/<name>``, those in
  ``WORKDIR/member_<i>/``. Both TF1 scalar summaries and TF2 ones (stored as tensors, as clu's
  ``SummaryWriter`` writes them) are read; images, text and histograms are ignored. For each
  step, the value written last wins (a resumed run writes a new event file).
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import event_file_loader
  from tensorboard.util import tensor_util
  # pylint: enable=g-import-not-at-top

  values: dict[tuple[int, str], dict[str, Any]] = {}
  sources = [("", workdir)] + [(f"member_{i}/", d) for i, d in _member_dirs(workdir)]
  for prefix, directory in sources:
    for path in _event_files(directory):
      for event in event_file_loader.EventFileLoader(path).Load():
        if not event.HasField("summary"):
          continue
        for value in event.summary.value:
          number = None
          if value.HasField("tensor"):
            try:
              array = tensor_util.make_ndarray(value.tensor)
            except (ValueError, TypeError):
              continue
            if array.size == 1 and array.dtype.kind in "fiu":
              number = float(array.reshape(()))
          elif value.HasField("simple_value"):
            number = float(value.simple_value)
          if number is None:
            continue
          name = prefix + value.tag
          kind = kind_of(name)
          record = values.setdefault((int(event.step), kind),
                                     {"step": int(event.step), "kind": kind})
          record[name] = number
          record["time"] = max(record.get("time", 0.0), float(event.wall_time))
  return Metrics(_sorted_records(values), "events" if values else "none")


def load_metrics(workdir: str) -> Metrics:
  """The run's ``metrics.jsonl`` if it has one, else the scalars of its event files."""
  path = os.path.join(workdir, METRICS_FILE)
  if os.path.isfile(path):
    return read_metrics_jsonl(path)
  return read_event_files(workdir)


# ----------------------------------------------------------------------------------------------
# Runs


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and other values stay as they are."""
  flat: dict[str, Any] = {}
  for key, value in config.items():
    if isinstance(value, Mapping) and value:
      flat.update(flatten_config(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
  """The flattened config keys whose values are not the same in all `configs` (or missing).

  Nested dicts are compared key by key (``"g_optimizer.learning_rate"``); a key that only some
  configs have differs.
  """
  flats = [flatten_config(c) for c in configs]
  keys = sorted(set().union(*flats)) if flats else []
  return [k for k in keys
          if any(_canonical(f.get(k, _MISSING)) != _canonical(flats[0].get(k, _MISSING))
                 for f in flats[1:])]


def _canonical(value: Any) -> Any:
  if value is _MISSING:
    return value
  return json.dumps(value, sort_keys=True, default=str)


@dataclasses.dataclass
class Run:
  """What the report shows of one run directory."""
  name: str          # shown on the page (the directory's name, longer when two are the same)
  ident: str         # `name` for ids: letters, digits, '_', '.', '-'
  workdir: str
  info: dict[str, Any]
  metrics: Metrics
  samples: dict[int | None, dict[int, str]]  # member (None = not a population) -> step -> PNG
  best: dict[str, Any] | None
  member_best: dict[int, dict[str, Any]]
  latest_checkpoint: int | None
  population_summary: dict[str, Any] | None
  population_size: int  # 0 = not a population

  @property
  def config(self) -> dict[str, Any]:
    config = self.info.get("config")
    return config if isinstance(config, dict) else {}

  @property
  def members(self) -> list[int]:
    """The member indices of a population (from the config, else from the metric names)."""
    found = set()
    for name in self.metrics.names():
      head = name.split("/", 1)[0]
      match = _MEMBER.match(head)
      if match and "/" in name:
        found.add(int(match.group(1)))
    found.update(m for m in self.samples if m is not None)
    return sorted(found | set(range(self.population_size)))

  @property
  def is_population(self) -> bool:
    return bool(self.population_size > 1 or any(
        _POPULATION_HEADS.match(n) for n in self.metrics.names()))


def _read_json(path: str) -> Any:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _sample_files(directory: str) -> dict[int, str]:
  if not os.path.isdir(directory):
    return {}
  found = {}
  for name in os.listdir(directory):
    match = _SAMPLE.match(name)
    if match:
      found[int(match.group(1))] = os.path.join(directory, name)
  return dict(sorted(found.items()))


def read_run(workdir: str, name: str | None = None) -> Run:
  """Reads a run directory's metrics and files (not its checkpoints); a `ConfigError` when it is
  not one (no ``run_info.json``). The config is the one in effect: the recorded values over
  today's defaults (`ganjax.runtime.run_info.config_of`)."""
  try:
    info = run_info.read_record(workdir)
    config = run_info.config_of(info)
  except ConfigError:  # no run_info.json
    raise
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ConfigError(f"{os.path.join(workdir, run_info.RUN_INFO_FILE)!r} is not a run record: "
                      f"{e}") from None
  info["config"] = config.to_dict()
  name = name or os.path.basename(os.path.normpath(os.path.abspath(workdir)))
  size = config.population.size
  samples_dir = os.path.join(workdir, "samples")
  samples: dict[int | None, dict[int, str]] = {}
  if _sample_files(samples_dir):
    samples[None] = _sample_files(samples_dir)
  for member, directory in _member_dirs(samples_dir) if os.path.isdir(samples_dir) else []:
    if _sample_files(directory):
      samples[member] = _sample_files(directory)
  best_file = f"best_{config.eval_best_metric or 'fid'}.json"
  best = _read_json(os.path.join(workdir, best_file))
  member_best = {}
  for member, directory in _member_dirs(workdir):
    record = _read_json(os.path.join(directory, best_file))
    if isinstance(record, dict):
      member_best[member] = record
  summary = _read_json(os.path.join(workdir, POPULATION_SUMMARY_FILE))
  return Run(name=name, ident=_ident(name), workdir=workdir, info=info,
             metrics=load_metrics(workdir), samples=samples,
             best=best if isinstance(best, dict) else None, member_best=member_best,
             latest_checkpoint=max(checkpoints.complete_steps(
                 os.path.join(workdir, "checkpoints")), default=None),
             population_summary=summary if isinstance(summary, dict) else None,
             population_size=size if size > 1 else 0)


def _ident(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "run"


def run_names(workdirs: Sequence[str]) -> list[str]:
  """Each run's directory name, with parent directories added until the names are unique."""
  parts = [os.path.normpath(os.path.abspath(w)).split(os.sep) for w in workdirs]
  depth = [1] * len(parts)
  for _ in range(max((len(p) for p in parts), default=0)):
    names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
    counts = collections.Counter(names)
    if all(counts[n] == 1 for n in names):
      break
    depth = [d + 1 if counts[n] > 1 else d for n, d in zip(names, depth)]
  names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
  seen: collections.Counter[str] = collections.Counter()
  unique = []
  for n in names:  # the same directory given twice
    seen[n] += 1
    unique.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
  return unique


def read_runs(workdirs: Sequence[str]) -> list[Run]:
  """Reads the run directories, named by `run_names`, with ids unique among them."""
  runs = [read_run(w, n) for w, n in zip(workdirs, run_names(workdirs))]
  seen: collections.Counter[str] = collections.Counter()
  for run in runs:
    seen[run.ident] += 1
    if seen[run.ident] > 1:
      run.ident = f"{run.ident}_{seen[run.ident]}"
  return runs


def throughput(metrics: Metrics) -> float | None:
  """Median steps per second: of the logged ``steps_per_sec``, else of the time between lines."""
  for name in ("steps_per_sec", "mean/steps_per_sec"):
    _, rates = metrics.series(name, TRAIN)
    rates = rates[np.isfinite(rates) & (rates > 0)]
    if rates.size:
      return float(np.median(rates))
  points = [(r["step"], r["time"]) for r in metrics.records if r["kind"] == TRAIN and "time" in r]
  rates = [(s1 - s0) / (t1 - t0) for (s0, t0), (s1, t1) in zip(points, points[1:])
           if s1 > s0 and t1 > t0]
  return statistics.median(rates) if rates else None


# ----------------------------------------------------------------------------------------------
# Plots


@dataclasses.dataclass
class Plot:
  metric: str  # data-metric
  title: str
  svg: str


def _base_names(run: Run, kind: str) -> list[str]:
  names = set()
  for name in run.metrics.names(kind):
    match = _POPULATION_HEADS.match(name)
    names.add(name[match.end():] if match else name)
  return sorted(names)


def _population_series(run: Run, name: str, kind: str
                       ) -> tuple[list[tuple[int, np.ndarray, np.ndarray]],
                                  tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Each member's series of `name`, and the mean and std by step (written, else computed)."""
  members = []
  for i in run.members:
    steps, values = run.metrics.series(f"member_{i}/{name}", kind)
    if steps.size:
      members.append((i, steps, values))
  mean_steps, mean = run.metrics.series(f"mean/{name}", kind)
  std_steps, std = run.metrics.series(f"std/{name}", kind)
  if mean_steps.size and np.array_equal(mean_steps, std_steps):
    return members, (mean_steps, mean, std)
  by_step: dict[int, list[float]] = collections.defaultdict(list)
  for _, steps, values in members:
    for s, v in zip(steps.tolist(), values.tolist()):
      if math.isfinite(v):
        by_step[s].append(v)
  steps = np.asarray(sorted(by_step), np.int64)
  mean = np.asarray([np.mean(by_step[s]) for s in steps.tolist()], np.float64)
  std = np.asarray([np.std(by_step[s]) for s in steps.tolist()], np.float64)
  return members, (steps, mean, std)


def _scope_svg_ids(svg: str, prefix: str) -> str:
  """Prefixes matplotlib's own ids (not the curves' gids) so that several SVGs share a page."""
  ids = {i for i in re.findall(r'\sid="([^"]+)"', svg)
         if not i.startswith(("curve:", "band:"))}
  svg = re.sub(r'(\sid=")([^"]+)"',
               lambda m: f'{m[1]}{prefix}{m[2]}"' if m[2] in ids else m[0], svg)
  return re.sub(r'(url\(#|href="#)([^")]+)',
                lambda m: f"{m[1]}{prefix}{m[2]}" if m[2] in ids else m[0], svg)


def _figure_svg(fig: Any, prefix: str) -> str:
  buffer = io.StringIO()
  fig.savefig(buffer, format="svg", bbox_inches="tight")
  svg = buffer.getvalue()
  return _scope_svg_ids(svg[svg.index("<svg"):], prefix)


def _plot(runs: Sequence[Run], metric: str, title: str, names: Sequence[str], kind: str,
          index: int) -> Plot | None:
  """One plot of metrics `names` (of `kind`), one curve per run and name (population: more)."""
  # pylint: disable=g-import-not-at-top
  import matplotlib
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  # pylint: enable=g-import-not-at-top

  styles = ("-", "--", ":", "-.")
  colours = matplotlib.colormaps["tab10"].colors
  marker = "o" if kind == EVAL else None
  with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"ganjax-{index}",
                              "font.size": 9}):
    fig = Figure(figsize=(7.5, 3.4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    drawn = 0
    for r, run in enumerate(runs):
      colour = colours[r % len(colours)]
      for n, name in enumerate(names):
        style = styles[n % len(styles)]
        label = run.name if len(names) == 1 else f"{run.name}: {name}"
        if run.is_population:
          members, (steps, mean, std) = _population_series(run, name, kind)
          for m, (i, member_steps, values) in enumerate(members):
            values = np.where(np.isfinite(values), values, np.nan)
            ax.plot(member_steps, values, style, color=colour, linewidth=0.7, alpha=0.45,
                    gid=f"curve:{run.ident}:member_{i}/{name}",
                    label=f"{label} (members)" if m == 0 else "_nolegend_")
            drawn += 1
          if steps.size:
            ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.18,
                            linewidth=0, gid=f"band:{run.ident}:std/{name}",
                            label="_nolegend_")
            ax.plot(steps, mean, style, color=colour, linewidth=2.0, marker=marker,
                    markersize=3, gid=f"curve:{run.ident}:mean/{name}",
                    label=f"{label} (mean \u00b1 std)")
            drawn += 1
        else:
          steps, values = run.metrics.series(name, kind)
          values = np.where(np.isfinite(values), values, np.nan)
          if steps.size:
            ax.plot(steps, values, style, color=colour, linewidth=1.4, marker=marker,
                    markersize=3, gid=f"curve:{run.ident}:{name}", label=label)
            drawn += 1
    if not drawn:
      return None
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    svg = _figure_svg(fig, f"p{index}-")
  return Plot(metric, title, svg)


def _metric_order(name: str) -> tuple[int, str]:
  return (EVAL_METRICS.index(name) if name in EVAL_METRICS else len(EVAL_METRICS), name)


def plots(runs: Sequence[Run]) -> list[Plot]:
  """The plots of the page: the metric groups, other training metrics, evaluation metrics."""
  train = set().union(*(_base_names(r, TRAIN) for r in runs))
  evals = set().union(*(_base_names(r, EVAL) for r in runs))
  grouped = {n for _, _, names in GROUPS for n in names}
  specs = [(key, title, names, TRAIN) for key, title, names in GROUPS
           if any(n in train for n in names)]
  skip = grouped | {"steps_per_sec"}
  specs += [(n, n, (n,), TRAIN) for n in sorted(train - skip)
            if not (n.endswith("_std") and n[:-len("_std")] in train)]
  specs += [(n, n, (n,), EVAL) for n in sorted(evals, key=_metric_order)
            if not (n.endswith("_std") and n[:-len("_std")] in evals)]
  made = (_plot(runs, key, title, names, kind, i)
          for i, (key, title, names, kind) in enumerate(specs))
  return [p for p in made if p is not None]


# ----------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
  max-width: 1200px; padding: 0 1.2em 3em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin-bottom: .4em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.missing { color: #999; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f8f8f8; padding: .6em; overflow: auto; max-height: 30em; }
.plot { margin: 1em 0; } .plot svg { max-width: 100%; height: auto; }
.run { margin-top: 1.5em; } .note { color: #666; }
.samples .grids { display: flex; flex-wrap: wrap; gap: 1em; }
.samples figure { margin: 0; }
.samples img { image-rendering: pixelated; min-width: 192px; max-width: 100%; height: auto;
  border: 1px solid #ddd; }
.samples input[type=range] { width: min(420px, 80vw); vertical-align: middle; }
.samples .step { margin-left: .6em; font-variant-numeric: tabular-nums; }
"""

_SCRIPT = """
document.querySelectorAll('.samples').forEach(function (box) {
  var data = JSON.parse(box.querySelector('script.sample-data').textContent);
  var slider = box.querySelector('input[type=range]');
  var label = box.querySelector('.step');
  var images = box.querySelectorAll('img');
  function show(index) {
    label.textContent = 'step ' + data.steps[index];
    images.forEach(function (img, i) {
      var src = data.images[i][index];
      if (src) { img.src = src; img.alt = img.dataset.label + ' at step ' + data.steps[index]; }
      else { img.removeAttribute('src'); img.alt = img.dataset.label + ': no grid at step '
        + data.steps[index]; }
    });
  }
  slider.addEventListener('input', function () { show(Number(slider.value)); });
  show(Number(slider.value));
});
"""


def _e(value: Any) -> str:
  return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, str):
    return value
  return json.dumps(value)


def _data_uri(path: str) -> str | None:
  try:
    with open(path, "rb") as f:
      return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")
  except OSError:
    return None


def _spread(steps: Sequence[int], limit: int) -> list[int]:
  """At most `limit` of `steps`, evenly spread, keeping the first and the last."""
  if limit <= 0 or len(steps) <= limit:
    return list(steps)
  if limit == 1:
    return [steps[-1]]
  picks = sorted({round(i * (len(steps) - 1) / (limit - 1)) for i in range(limit)})
  return [steps[i] for i in picks]


def _samples_html(run: Run, max_steps: int) -> str:
  if not run.samples:
    return '<p class="note">No sample grids.</p>'
  keys = sorted(run.samples, key=lambda m: -1 if m is None else m)
  steps = _spread(sorted(set().union(*(run.samples[k] for k in keys))), max_steps)
  images = [[_data_uri(run.samples[k][s]) if s in run.samples[k] else None for s in steps]
            for k in keys]
  data = json.dumps({"steps": steps, "images": images}).replace("</", "<\\/")
  last = len(steps) - 1
  figures = []
  for k, uris in zip(keys, images):
    label = run.name if k is None else f"{run.name} member {k}"
    src = f' src="{uris[last]}"' if uris[last] else ""
    caption = "" if k is None else f"<figcaption>member {k}</figcaption>"
    figures.append(f'<figure><img{src} data-label="{_e(label)}" '
                   f'alt="{_e(label)} at step {steps[last]}">{caption}</figure>')
  return (f'<div class="samples" data-run="{_e(run.ident)}">'
          f'<div><input type="range" min="0" max="{last}" step="1" value="{last}" '
          f'aria-label="sample step of {_e(run.name)}"><span class="step">step {steps[last]}'
          f'</span> <span class="note">({len(steps)} grids)</span></div>'
          f'<div class="grids">{"".join(figures)}</div>'
          f'<script type="application/json" class="sample-data">{data}</script></div>')


_METRIC_NAMES = {"fid": "FID", "inception_score": "IS", "kid": "KID", "precision": "precision",
                 "recall": "recall", "density": "density", "coverage": "coverage"}


def _best_metric(record: Mapping[str, Any]) -> str:
  metric = record.get("metric", "fid")
  return metric if isinstance(metric, str) and metric in _METRIC_NAMES else "fid"


def _best_text(record: Mapping[str, Any]) -> str:
  parts = [f"step {_fmt(record.get('step', '?'))}"]
  for key, name in _METRIC_NAMES.items():
    if key in record:
      text = f"{name} {_fmt(record[key])}"
      if f"{key}_std" in record:
        text += f" &plusmn; {_fmt(record[f'{key}_std'])}"
      parts.append(text)
  return ", ".join(parts)


def _best_html(run: Run) -> str:
  lines = []
  if run.best:
    lines.append(f"best {_METRIC_NAMES[_best_metric(run.best)]}: {_best_text(run.best)}")
  for member, record in sorted(run.member_best.items()):
    lines.append(f"member {member} best {_METRIC_NAMES[_best_metric(record)]}: "
                 f"{_best_text(record)}")
  if not lines:
    if run.latest_checkpoint is not None:
      lines.append(f"latest checkpoint: step {run.latest_checkpoint} (no FID evaluation)")
    else:
      lines.append("no checkpoint")
  elif run.latest_checkpoint is not None:
    lines.append(f"latest checkpoint: step {run.latest_checkpoint}")
  return "<br>".join(lines)


def _best_summary(run: Run) -> str:
  records = [run.best] if run.best else list(run.member_best.values())
  metric = _best_metric(records[0]) if records else "fid"
  records = [r for r in records if _number(r.get(metric)) is not None]
  if records:
    pick = min if metric in ('fid', 'kid') else max
    record = pick(records, key=lambda r: r[metric])
    return (f"{_METRIC_NAMES[metric]} {_fmt(float(record[metric]))} "
            f"(step {_fmt(record.get('step', '?'))})")
  if run.latest_checkpoint is not None:
    return f"latest checkpoint: step {run.latest_checkpoint}"
  return '<span class="missing">&mdash;</span>'


def _last_step(run: Run) -> str:
  steps = [r["step"] for r in run.metrics.records]
  return str(max(steps)) if steps else '<span class="missing">&mdash;</span>'


def _throughput_text(run: Run) -> str:
  rate = throughput(run.metrics)
  return f"{rate:.3g} steps/s" if rate is not None else '<span class="missing">&mdash;</span>'


def _overview_html(runs: Sequence[Run]) -> str:
  rows = []
  for run in runs:
    kind = (f"population of {len(run.members)}" if run.is_population else "single")
    rows.append(
        f'<tr><td><a href="#run-{_e(run.ident)}">{_e(run.name)}</a></td><td>{kind}</td>'
        f'<td>{_e(run.info.get("data_source", ""))}</td><td class="num">{_last_step(run)}</td>'
        f'<td>{_best_summary(run)}</td><td class="num">{_throughput_text(run)}</td>'
        f'<td>{_e(run.metrics.source)}</td></tr>')
  return ("<table><tr><th>run</th><th>kind</th><th>data</th><th>last step</th>"
          "<th>best metric / checkpoint</th><th>median throughput</th><th>metrics from</th></tr>"
          + "".join(rows) + "</table>")


def _differences_html(runs: Sequence[Run]) -> str:
  keys = differing_keys([r.config for r in runs])
  if not keys:
    return '<p class="note">All runs have the same config.</p>'
  flats = [flatten_config(r.config) for r in runs]
  head = "".join(f"<th>{_e(r.name)}</th>" for r in runs)
  rows = []
  for key in keys:
    cells = "".join(f"<td>{_e(_fmt(f[key]))}</td>" if key in f
                    else '<td class="missing">&mdash;</td>' for f in flats)
    rows.append(f"<tr><th><code>{_e(key)}</code></th>{cells}</tr>")
  return (f'<table class="config-diff"><tr><th>config key</th>{head}</tr>'
          + "".join(rows) + "</table>")


def _run_html(run: Run, max_sample_steps: int) -> str:
  flat = flatten_config(run.config)
  key_rows = "".join(f"<tr><th><code>{_e(k)}</code></th><td>{_e(_fmt(flat[k]))}</td></tr>"
                     for k in KEY_CONFIG if k in flat and flat[k] not in ("", None))
  shape = run.info.get("image_shape")
  if shape:
    key_rows += f"<tr><th>image shape</th><td>{_e(_fmt(shape))}</td></tr>"
  classes = run.info.get("class_names")
  if classes:
    key_rows += f"<tr><th>classes</th><td>{len(classes)}</td></tr>"
  notes = []
  if run.metrics.skipped_lines:
    notes.append(f"{run.metrics.skipped_lines} unreadable line(s) of {METRICS_FILE} skipped")
  if run.metrics.source == "none":
    notes.append("no metrics (neither metrics.jsonl nor TensorBoard scalars)")
  note = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
  population = ""
  if run.population_summary:
    population = ("<details><summary>Population summary</summary><pre>"
                  + _e(json.dumps(run.population_summary, indent=2)) + "</pre></details>")
  return (f'<section class="run" id="run-{_e(run.ident)}" data-run="{_e(run.ident)}">'
          f"<h3>{_e(run.name)}</h3><p class=\"note\"><code>{_e(os.path.abspath(run.workdir))}"
          f"</code></p>{note}"
          f"<table><tr><th>best checkpoint</th><td>{_best_html(run)}</td></tr>"
          f"<tr><th>throughput (median)</th><td>{_throughput_text(run)}</td></tr>"
          f"{key_rows}</table>"
          f"<details><summary>Full config</summary><pre>"
          f"{_e(json.dumps(run.config, indent=2, sort_keys=True))}</pre></details>{population}"
          f"<h4>Samples</h4>{_samples_html(run, max_sample_steps)}</section>")


def render_html(runs: Sequence[Run], max_sample_steps: int = DEFAULT_MAX_SAMPLE_STEPS) -> str:
  """The report page of `runs` (see the module docstring)."""
  title = "ganjax report: " + ", ".join(r.name for r in runs)
  parts = [
      "<!DOCTYPE html>",
      '<html lang="en"><head><meta charset="utf-8">',
      '<meta name="viewport" content="width=device-width, initial-scale=1">',
      '<link rel="icon" href="data:,">',
      f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
      f"<h1>{_e(title)}</h1>",
      "<h2>Runs</h2>", _overview_html(runs),
  ]
  if len(runs) > 1:
    parts += ["<h2>Config differences</h2>", _differences_html(runs)]
  parts.append("<h2>Metrics</h2>")
  made = plots(runs)
  if not made:
    parts.append('<p class="note">No metrics to plot.</p>')
  parts += [f'<figure class="plot" data-metric="{_e(p.metric)}">{p.svg}</figure>'
            for p in made]
  parts.append("<h2>Run details</h2>")
  parts += [_run_html(r, max_sample_steps) for r in runs]
  parts.append(f"<script>{_SCRIPT}</script></body></html>\n")
  return "\n".join(parts)


def write_report(workdirs: Sequence[str], out: str,
                 max_sample_steps: int = DEFAULT_MAX_SAMPLE_STEPS) -> list[Run]:
  """Reads the runs in `workdirs` and writes their report page to `out`."""
  if not workdirs:
    raise ConfigError("no run directory given")
  out_dir = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(out_dir):
    raise ConfigError(f"cannot write {out!r}: no directory {out_dir!r}")
  runs = read_runs(workdirs)
  page = render_html(runs, max_sample_steps)
  files.write_text(out, page)
  return runs


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m ganjax.report",
      description="Writes one self-contained HTML page that summarizes training runs.")
  parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (WORKDIR)")
  parser.add_argument("--out", default="report.html", help="the HTML file to write")
  parser.add_argument("--max_sample_steps", type=int, default=DEFAULT_MAX_SAMPLE_STEPS,
                      help="at most this many sample grids per run, evenly spread over the "
                           "steps (0 = all)")
  return parser


def main(argv: Iterable[str] | None = None) -> int:
  """Command-line entry point; returns the exit status (user errors: one line, status 1)."""
  args = _parser().parse_args(None if argv is None else list(argv))
  try:
    runs = write_report(args.runs, args.out, args.max_sample_steps)
  except GanjaxError as e:
    sys.stderr.write(f"ganjax: error: {e}\n")
    return 1
  print(f"wrote {args.out} ({len(runs)} run{'s' if len(runs) != 1 else ''}, "
        f"{os.path.getsize(args.out) / 1024:.0f} KiB)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
