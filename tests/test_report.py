"""Tests of ganjax.report: reading runs' metrics, the config table and the page in Chromium."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np
from PIL import Image
import pytest

from ganjax import report
from ganjax.errors import ConfigError
from tests.conftest import REPO_ROOT, subprocess_env

TRAIN_STEPS = (0, 50, 100, 150, 200)
EVAL_STEPS = (100, 200)
SAMPLE_STEPS = (0, 100, 200)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _config(**overrides: Any) -> dict[str, Any]:
  config = {"seed": 0, "dataset": "cifar10", "batch_size": 64, "loss": "nonsaturating",
            "num_train_steps": 200, "generator": {"name": "dcgan", "z_dim": 128},
            "g_optimizer": {"name": "adam", "learning_rate": 2e-4},
            "population": {"size": 0, "sweep": ""}}
  for key, value in overrides.items():
    section = config
    *heads, last = key.split(".")
    for head in heads:
      section = section[head]
    section[last] = value
  return config


def _train_values(step: int, shift: float) -> dict[str, float]:
  return {"d_loss": 1.4 - step / 400 + shift, "g_loss": 0.7 + step / 500 + shift,
          "d_real": 0.5 + step / 1000, "d_fake": 0.5 - step / 1000}


def _eval_values(step: int, shift: float) -> dict[str, float]:
  return {"fid": 300.0 - step + shift, "inception_score": 1.0 + step / 100,
          "inception_score_std": 0.1}


def _write_png(path: pathlib.Path, colour: tuple[int, int, int]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(path)


def write_run(root: pathlib.Path, name: str, *, population: int = 0, shift: float = 0.0,
              metrics: str = "jsonl", config: dict[str, Any] | None = None
              ) -> pathlib.Path:
  """A small run directory: run_info.json, metrics (jsonl, events or none), sample PNGs."""
  workdir = root / name
  workdir.mkdir(parents=True)
  config = config or _config(**({"population.size": population} if population else {}))
  info = {"config": config, "image_shape": [8, 8, 3], "class_names": ["a", "b"],
          "data_source": "synthetic"}
  (workdir / "run_info.json").write_text(json.dumps(info))
  members = range(population) if population else [None]
  lines = []
  for step in TRAIN_STEPS:
    if population:
      per = [_train_values(step, shift + 0.1 * i) for i in members]
      values = {f"member_{i}/{k}": v for i, m in zip(members, per) for k, v in m.items()}
      values.update({f"mean/{k}": float(np.mean([m[k] for m in per])) for k in per[0]})
      values.update({f"std/{k}": float(np.std([m[k] for m in per])) for k in per[0]})
    else:
      values = _train_values(step, shift)
    lines.append({"step": step, "time": 1000.0 + step / 10, "kind": "train", **values,
                  "steps_per_sec": 10.0 + step / 100})
  for step in EVAL_STEPS:
    if population:
      values = {f"member_{i}/{k}": v for i in members
                for k, v in _eval_values(step, shift + i).items()}
    else:
      values = _eval_values(step, shift)
    lines.append({"step": step, "time": 1000.0 + step / 10, "kind": "eval", **values})
  if metrics == "jsonl":
    with open(workdir / "metrics.jsonl", "w") as f:
      f.writelines(json.dumps(line) + "\n" for line in lines)
  elif metrics == "events":
    _write_events(workdir, lines)
  for member in members:
    for n, step in enumerate(SAMPLE_STEPS):
      folder = workdir / "samples" if member is None else workdir / "samples" / f"member_{member}"
      _write_png(folder / f"step_{step}.png", (80 * n, 40 + 50 * (member or 0), 200 - 60 * n))
  (workdir / "checkpoints" / "200").mkdir(parents=True)
  (workdir / "checkpoints" / "100").mkdir()
  return workdir


def _write_events(workdir: pathlib.Path, lines: list[dict[str, Any]]) -> None:
  """Writes the scalars of `lines` as clu does: members' in member_<i>/, without the prefix."""
  from clu import metric_writers  # pylint: disable=g-import-not-at-top  (TensorFlow: slow)
  writers: dict[str, Any] = {}

  def writer(prefix: str) -> Any:
    if prefix not in writers:
      writers[prefix] = metric_writers.SummaryWriter(str(workdir / prefix))
    return writers[prefix]

  for line in lines:
    per_dir: dict[str, dict[str, float]] = {}
    for key, value in line.items():
      if key in ("step", "time", "kind"):
        continue
      head, _, rest = key.partition("/")
      prefix, name = (head, rest) if head.startswith("member_") else ("", key)
      per_dir.setdefault(prefix, {})[name] = value
    for prefix, values in per_dir.items():
      writer(prefix).write_scalars(line["step"], values)
  writer("").write_images(0, {"samples": np.zeros((1, 8, 8, 3), np.uint8)})
  writer("").write_texts(0, {"fid_protocol": "synthetic"})
  for w in writers.values():
    w.close()


# ----------------------------------------------------------------------------------------------
# Parsing


def test_metrics_jsonl_lines_of_a_step_merge_and_truncated_line_is_skipped(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text(
      '{"step": 50, "time": 1.0, "kind": "train", "d_loss": 1.0}\n'
      '{"step": 100, "time": 2.0, "kind": "train", "d_loss": 2.0, "g_loss": 5.0}\n'
      '{"step": 100, "time": 2.5, "kind": "eval", "fid": 40.0}\n'
      # a second line of step 100 (an evaluation's test accuracy, or an older resumed run)
      '{"step": 100, "time": 9.0, "kind": "train", "d_loss": 3.0}\n'
      '{"step": 150, "time": 10.0, "kind": "train", "d_loss": 4.0}\n'
      '{"step": 200, "time": 11.0, "ki')
  metrics = report.read_metrics_jsonl(str(path))
  assert metrics.skipped_lines == 1
  steps, values = metrics.series("d_loss")
  assert steps.tolist() == [50, 100, 150] and values.tolist() == [1.0, 3.0, 4.0]
  assert metrics.series("g_loss")[1].tolist() == [5.0]  # merged: later values win
  assert metrics.series("fid", "eval")[1].tolist() == [40.0]  # another kind: kept
  assert [(r["step"], r["kind"]) for r in metrics.records] == [
      (50, "train"), (100, "train"), (100, "eval"), (150, "train")]


def test_event_files_are_read_when_there_is_no_metrics_jsonl(tmp_path):
  jsonl = write_run(tmp_path, "jsonl", population=2)
  events = write_run(tmp_path, "events", population=2, metrics="events")
  assert not (events / "metrics.jsonl").exists()
  from_events = report.load_metrics(str(events))
  from_jsonl = report.load_metrics(str(jsonl))
  assert from_events.source == "events"
  assert from_events.names() == from_jsonl.names()
  for kind in ("train", "eval"):
    for name in from_jsonl.names(kind):
      np.testing.assert_allclose(from_events.series(name, kind)[1],
                                 from_jsonl.series(name, kind)[1], rtol=1e-6)
  assert from_events.series("member_1/fid", "eval")[0].tolist() == list(EVAL_STEPS)

  # A resumed run writes a second event file that repeats a step: the later value wins.
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  single = write_run(tmp_path, "single", metrics="events")
  time.sleep(1.1)  # event file names start with the time in seconds
  writer = metric_writers.SummaryWriter(str(single))
  writer.write_scalars(150, {"d_loss": -7.0})
  writer.close()
  steps, values = report.load_metrics(str(single)).series("d_loss")
  assert steps.tolist() == list(TRAIN_STEPS) and values[3] == -7.0


def test_differing_keys_lists_nested_and_missing_keys():
  a = _config()
  b = _config(**{"g_optimizer.learning_rate": 1e-4, "seed": 0})
  c = _config()
  c["ema_decay"] = 0.999
  assert report.differing_keys([a, b, c]) == ["ema_decay", "g_optimizer.learning_rate"]
  assert report.differing_keys([a, _config()]) == []
  assert report.flatten_config({"x": {"y": [1, 2]}, "z": 1}) == {"x.y": [1, 2], "z": 1}


def test_runs_summary_values(tmp_path):
  run = report.read_run(str(write_run(tmp_path, "run_a")))
  assert report.throughput(run.metrics) == pytest.approx(11.0)  # median of 10, 10.5, ..., 12
  assert run.latest_checkpoint == 200 and run.best is None
  assert sorted(run.samples[None]) == list(SAMPLE_STEPS)
  pop = report.read_run(str(write_run(tmp_path, "pop", population=3)))
  assert pop.is_population and pop.members == [0, 1, 2] and sorted(pop.samples) == [0, 1, 2]
  assert report.run_names(["/x/a/run", "/y/b/run", "/z/other"]) == ["a/run", "b/run", "other"]


def test_command_line_reports_a_bad_directory_in_one_line(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  assert report.main([str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")]) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "is not a ganjax run directory" in err
  with pytest.raises(ConfigError):
    report.read_run(str(tmp_path / "missing"))


def test_the_report_does_not_start_tensorflow():
  # The report reads files: TensorFlow (~6 s to import, through clu's TensorBoard writer) stays
  # out of its process until it reads event files.
  code = ("import sys, ganjax.report; "
          "print(sorted(m for m in ('tensorflow', 'clu.metric_writers') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=subprocess_env(),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == "[]"


# ----------------------------------------------------------------------------------------------
# The page


def _expected_curves(runs: dict[str, int], names: tuple[str, ...]) -> set[str]:
  """The curve ids of a plot of `names` for runs {ident: population size (0 = single)}."""
  ids = set()
  for ident, k in runs.items():
    for name in names:
      if k:
        ids |= {f"curve:{ident}:member_{i}/{name}" for i in range(k)}
        ids.add(f"curve:{ident}:mean/{name}")
      else:
        ids.add(f"curve:{ident}:{name}")
  return ids


PLOTS = {"losses": ("d_loss", "g_loss"), "d_outputs": ("d_real", "d_fake"), "fid": ("fid",),
         "inception_score": ("inception_score",)}


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> tuple[pathlib.Path, dict[str, int]]:
  root = tmp_path_factory.mktemp("runs")
  run_a = write_run(root, "run_a")
  run_b = write_run(root, "run_b", shift=0.3,
                    config=_config(**{"g_optimizer.learning_rate": 1e-4, "loss": "hinge"}))
  pop = write_run(root, "pop", population=2, shift=-0.2)
  (run_a / "best_fid.json").write_text(json.dumps({"step": 100, "fid": 200.0,
                                                   "inception_score": 2.0}))
  out = root / "report.html"
  assert report.main([str(run_a), str(run_b), str(pop), "--out", str(out)]) == 0
  return out, {"run_a": 0, "run_b": 0, "pop": 2}


def test_page_is_self_contained_with_the_plots_and_config_table(report_page):
  out, runs = report_page
  page = out.read_text()
  assert not re.search(r"""<(script|img|link|iframe)[^>]*\s(src|href)=["']?(https?:|//)""",
                       page, re.I)
  assert "<link rel=\"stylesheet\"" not in page
  assert page.count('type="range"') == 3
  for metric, names in PLOTS.items():
    block = re.search(rf'<figure class="plot" data-metric="{metric}">(.*?)</figure>', page,
                      re.S).group(1)
    found = re.findall(r'id="(curve:[^"]+)"', block)
    assert sorted(found) == sorted(_expected_curves(runs, names)), metric
  assert 'data-metric="inception_score_std"' not in page
  table = re.search(r'<table class="config-diff">(.*?)</table>', page, re.S).group(1)
  assert re.findall(r"<code>([^<]+)</code>", table) == ["g_optimizer.learning_rate", "loss",
                                                        "population.size"]
  assert "FID 200, IS 2" in page and "latest checkpoint: step 200" in page
  ids = re.findall(r'\sid="([^"]+)"', page)
  assert len(ids) == len(set(ids))  # the SVGs' own ids do not collide


def _find_browser() -> str | None:
  return next((p for p in map(shutil.which, BROWSERS) if p), None)


class Browser:
  """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe)."""

  def __init__(self, binary: str, profile: str):
    to_browser, self._browser_in = os.pipe()   # the browser reads fd 3
    self._browser_out, from_browser = os.pipe()  # and writes fd 4
    # Puts the pipe ends on fds 3 and 4 of the browser process.
    launcher = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                "os.execv(sys.argv[3], sys.argv[3:])")
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
    self.process = subprocess.Popen(
        [sys.executable, "-c", launcher, str(to_browser), str(from_browser), *args],
        pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, process_group=0)
    os.close(to_browser)
    os.close(from_browser)
    self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
    self.events: list[dict[str, Any]] = []
    self._next_id = 0
    threading.Thread(target=self._read, daemon=True).start()
    self.page: str | None = None  # the attached page target

  def _read(self) -> None:
    buffer = b""
    while chunk := os.read(self._browser_out, 1 << 16):
      buffer += chunk
      *messages, buffer = buffer.split(b"\0")
      for message in messages:
        self.messages.put(json.loads(message))
    self.messages.put(None)

  def call(self, method: str, params: dict[str, Any] | None = None, *,
           on_page: bool = True, timeout: float = 30.0) -> dict[str, Any]:
    self._next_id += 1
    message = {"id": self._next_id, "method": method, "params": params or {}}
    if on_page and self.page:
      message["sessionId"] = self.page
    os.write(self._browser_in, json.dumps(message).encode() + b"\0")
    deadline = time.monotonic() + timeout
    while True:
      reply = self.messages.get(timeout=max(deadline - time.monotonic(), 0.01))
      assert reply is not None, "the browser closed its pipe"
      if reply.get("id") == self._next_id:
        assert "error" not in reply, (method, reply["error"])
        return reply["result"]
      if "method" in reply:
        self.events.append(reply)

  def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not any(e["method"] == method for e in self.events):
      reply = self.messages.get(timeout=max(deadline - time.monotonic(), 0.01))
      assert reply is not None, "the browser closed its pipe"
      if "method" in reply:
        self.events.append(reply)
    return next(e for e in self.events if e["method"] == method)

  def open(self, url: str) -> None:
    target = self.call("Target.createTarget", {"url": "about:blank"}, on_page=False)
    self.page = self.call("Target.attachToTarget",
                          {"targetId": target["targetId"], "flatten": True},
                          on_page=False)["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
      self.call(f"{domain}.enable")
    self.call("Emulation.setDeviceMetricsOverride",
              {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    self.call("Page.navigate", {"url": url})
    self.wait_for("Page.loadEventFired")

  def evaluate(self, expression: str) -> Any:
    result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                            "awaitPromise": True})
    assert "exceptionDetails" not in result, result["exceptionDetails"]
    return result["result"].get("value")

  def errors(self) -> list[str]:
    found = []
    for event in self.events:
      params = event.get("params", {})
      if event["method"] == "Runtime.exceptionThrown":
        found.append(json.dumps(params["exceptionDetails"])[:500])
      elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error",
                                                                                "assert"):
        found.append(json.dumps(params["args"])[:500])
      elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
        found.append(params["entry"]["text"])
    return found

  def screenshot(self, path: str) -> None:
    data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
    pathlib.Path(path).write_bytes(base64.b64decode(data))

  def close(self) -> None:
    try:
      self.call("Browser.close", on_page=False, timeout=5)
    except (AssertionError, queue.Empty, OSError):
      pass
    try:
      self.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      os.killpg(self.process.pid, 9)
      self.process.wait()
    os.close(self._browser_in)
    os.close(self._browser_out)


@pytest.fixture
def browser():
  binary = _find_browser()
  if binary is None:
    pytest.skip(f"no headless Chromium on PATH (looked for {', '.join(BROWSERS)}); "
                "install one, e.g. `apt-get install chromium`, to run the browser test")
  with tempfile.TemporaryDirectory(prefix="ganjax-chromium-") as profile:
    opened = Browser(binary, profile)
    try:
      yield opened
    finally:
      opened.close()


def test_page_in_headless_chromium(browser, report_page):
  out, runs = report_page
  browser.open(out.resolve().as_uri())
  assert browser.evaluate("document.readyState") == "complete"
  assert browser.evaluate("document.title").startswith("ganjax report")

  # One curve per metric and run (a population: each member's and the mean).
  for metric, names in PLOTS.items():
    ids = browser.evaluate(
        f"""Array.from(document.querySelectorAll('[data-metric="{metric}"] svg [id^="curve:"]'))
            .map(e => e.id)""")
    assert sorted(ids) == sorted(_expected_curves(runs, names)), metric
  assert browser.evaluate("""document.querySelectorAll('[data-metric="losses"] svg').length""") \
      == 1
  # Nothing was fetched: images are data: URIs, no script or style comes from elsewhere.
  assert browser.evaluate("performance.getEntriesByType('resource').length") == 0
  assert browser.evaluate("Array.from(document.images).every(i => i.complete && "
                          "i.naturalWidth > 0 && i.src.startsWith('data:image/png'))")

  # Clicking the left end of run_a's slider shows the first grid, the arrow key the next one.
  box = """document.querySelector('.samples[data-run="run_a"]')"""
  state = f"""({box}.querySelector('img').src + '|' + {box}.querySelector('.step').textContent)"""
  last_src, last_label = browser.evaluate(state).split("|")
  assert last_label == f"step {SAMPLE_STEPS[-1]}"
  rect = browser.evaluate(f"""(() => {{ const s = {box}.querySelector('input[type=range]');
      s.scrollIntoView({{block: 'center'}}); const r = s.getBoundingClientRect();
      return {{x: r.left, y: r.top + r.height / 2}}; }})()""")
  for kind in ("mousePressed", "mouseReleased"):
    browser.call("Input.dispatchMouseEvent", {"type": kind, "x": rect["x"] + 1, "y": rect["y"],
                                              "button": "left", "clickCount": 1})
  first_src, first_label = browser.evaluate(state).split("|")
  assert first_label == f"step {SAMPLE_STEPS[0]}" and first_src != last_src
  for kind in ("keyDown", "keyUp"):
    browser.call("Input.dispatchKeyEvent", {"type": kind, "key": "ArrowRight",
                                            "code": "ArrowRight", "windowsVirtualKeyCode": 39})
  second_src, second_label = browser.evaluate(state).split("|")
  assert second_label == f"step {SAMPLE_STEPS[1]}" and second_src not in (first_src, last_src)
  # The population's slider moves all its members' grids.
  pop_srcs = browser.evaluate("""Array.from(document.querySelectorAll(
      '.samples[data-run="pop"] img')).map(i => i.src)""")
  assert len(pop_srcs) == 2 and len(set(pop_srcs)) == 2
  if os.environ.get("GANJAX_REPORT_SCREENSHOT"):
    browser.screenshot(os.environ["GANJAX_REPORT_SCREENSHOT"])
  assert browser.errors() == []


@pytest.fixture(scope="module")
def trained_runs_page(tmp_path_factory) -> tuple[pathlib.Path, list[str]]:
  """Two tiny runs actually trained (DCGAN and WGAN-GP), and their report."""
  from ganjax import tasks  # pylint: disable=g-import-not-at-top
  from tests.tiny import tiny_config  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("trained")
  names = ["dcgan", "wgan_gp"]
  for name in names:
    config = tiny_config(name, num_train_steps=6, log_every_steps=1, sample_every_steps=2,
                         checkpoint_every_steps=6, n_critic=1)
    tasks.train_and_evaluate(config, str(root / name))
  out = root / "report.html"
  assert report.main([str(root / n) for n in names] + ["--out", str(out)]) == 0
  return out, names


def test_report_of_two_trained_runs_in_headless_chromium(browser, trained_runs_page):
  out, names = trained_runs_page
  browser.open(out.resolve().as_uri())
  assert browser.evaluate("document.readyState") == "complete"
  for metric, curves in {"losses": ("d_loss", "g_loss"), "d_outputs": ("d_real", "d_fake")
                         }.items():
    ids = browser.evaluate(
        f"""Array.from(document.querySelectorAll('[data-metric="{metric}"] svg [id^="curve:"]'))
            .map(e => e.id)""")
    assert sorted(ids) == sorted(f"curve:{n}:{c}" for n in names for c in curves), metric
  box = """document.querySelector('.samples[data-run="dcgan"]')"""
  state = f"""({box}.querySelector('img').src + '|' + {box}.querySelector('.step').textContent)"""
  before = browser.evaluate(state)
  assert before.endswith("|step 6")
  browser.evaluate(f"""(() => {{ const s = {box}.querySelector('input[type=range]');
      s.value = s.min; s.dispatchEvent(new Event('input')); }})()""")
  after = browser.evaluate(state)
  assert after.endswith("|step 2") and after.split("|")[0] != before.split("|")[0]
  assert browser.errors() == []
