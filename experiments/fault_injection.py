"""Random faults during training: kill -9 and SIGTERM, restarts, and the final state.

  python -m experiments.fault_injection [--steps 300] [--faults 10] [--processes 1,2]
                                        [--seed 0] [--workdir DIR] [--checkpoint_every 5]

For each number of processes in ``--processes`` (1: one process; 2: two processes on this
machine joined by ``jax.distributed``, one CPU device each), one tiny DCGAN run of ``--steps``
steps (``python -m ganjax.main``, 8x8 synthetic images, widths of 4 channels) is hit by
``--faults`` faults, each a ``kill -9`` or a SIGTERM (chosen at random). A fault waits for the
log of process 0 to show a step line at or past a random target step (the targets are spread
over the first 80% of the run, so every start trains a while), then for a random extra delay
(up to ``--max_delay`` seconds: the signal lands anywhere inside a step or a checkpoint save),
and then:

* kill -9: every process of the run is killed (a lone survivor of two would wait in its
  collectives until JAX's heartbeat timeout); it must exit with -9 and loses the steps since its
  newest complete checkpoint;
* SIGTERM: sent to one process (a random one of two); every process must checkpoint the same
  step and exit with 75, and the restart must resume from exactly that step.

After each fault the same command starts the run again, until a start reaches the last step
(exit 0). Then an uninterrupted run of the same config in a fresh directory (same number of
processes) gives the reference, and the final states are compared leaf by leaf (parameters,
collections and optimizer states of both players, and the generator's EMA when the run keeps
one): a run resumed from its checkpoints ends bit-identical to an uninterrupted one, so
``max_abs_difference`` must be exactly 0.0.

Printed per number of processes: the faults survived (how many kill -9, how many SIGTERM), the
exit statuses seen (per process: -9 for a kill, 75 for a SIGTERM), the restarts, the steps lost
and trained again (per fault: the last step the log of the faulted start shows minus the step
the next start resumed from; ``--log_every 1`` makes the log show every step), damaged
checkpoints the restarts set aside, the time from each start to its first step (the restarts
read their programs from the compilation cache), the wall time of the faulted run and of the
uninterrupted one, and ``max_abs_difference=``; then ``faults_survived=K max_abs_difference=X``
over all of them. The exit status is 1 if a difference is not exactly 0 or a run failed another
way (a hang, an unexpected exit status, a traceback, a SIGTERM whose step was not the one
resumed from); the failing start's log is printed.

Measured with the defaults on the shared 2-core CPU (load average about 4): 10 + 10 faults
survived (1 process: 3 kill -9, 7 SIGTERM; 2 processes: 4 kill -9, 6 SIGTERM), 18 and 15 steps
lost to the kills (a kill soon after a checkpoint step can lose that checkpoint too: orbax was
still writing it, so up to about 2 x ``--checkpoint_every`` steps), none to a SIGTERM; with two
processes the common stop step came 2 to 15 steps after the signal. ``max_abs_difference=0.0``
in both; 7.6 minutes in all, mostly the starts of the restarts (5.5 s to the first step with one
process, 14 s with two).

Every run of one invocation shares one JAX compilation cache in a temporary directory, so a
restart does not compile again. The runs are kept in ``--workdir`` (``p1/`` and ``p2/``, each
with ``faulted/``, ``uninterrupted/`` and ``logs/``) or else in a temporary directory, removed
at the end unless something failed.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_PREEMPTED = 75  # ganjax.runtime.signals.EXIT_PREEMPTED (the driver imports no JAX to run)
TARGET_FRACTION = 0.8  # fault targets lie in the first 80% of the steps

STEP_LINE = re.compile(r"\] step (\d+)/\d+ \|")
FIRST_STEP = re.compile(r"\] step (\d+) took [0-9.]+ s \(including compilation\)")
RESUMED = re.compile(r"resuming from .*/checkpoints/(\d+)\s*$")
NEW_RUN = "initializing a new run in"
STOPPED = re.compile(r"^ganjax: stopped by signal (\d+) at step (\d+):")
DAMAGED = re.compile(r"checkpoints/(\d+) cannot be read")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--steps", type=int, default=300, help="training steps of each run")
  ap.add_argument("--faults", type=int, default=10, help="faults per number of processes")
  ap.add_argument("--processes", default="1,2", help="comma-separated process counts (1, 2)")
  ap.add_argument("--seed", type=int, default=0, help="seed of the fault plan (kinds, moments)")
  ap.add_argument("--workdir", default=None, help="keep the runs here (default: a temp dir)")
  ap.add_argument("--checkpoint_every", type=int, default=5,
                  help="--config.checkpoint_every_steps of the runs")
  ap.add_argument("--log_every", type=int, default=1,
                  help="--config.log_every_steps (1: the log shows the last step reached)")
  ap.add_argument("--max_delay", type=float, default=0.3,
                  help="largest random extra delay (s) after the target step line")
  ap.add_argument("--timeout", type=float, default=600,
                  help="seconds a start may take to reach its target step or its end")
  ap.add_argument("--stop_timeout", type=float, default=120,
                  help="seconds the processes may take to exit after a SIGTERM")
  args = ap.parse_args(argv)
  args.process_counts = [int(p) for p in args.processes.split(",") if p.strip()]
  if not args.process_counts or any(p not in (1, 2) for p in args.process_counts):
    ap.error(f"--processes takes 1 and/or 2, not {args.processes!r}")
  if args.steps < 10 or args.faults < 0:
    ap.error("--steps must be at least 10 and --faults at least 0")
  return args


class Failure(Exception):
  """A run did something the training CLI does not promise (the message quotes its logs)."""


def _tail(path: str, lines: int = 25) -> str:
  try:
    with open(path, errors="replace") as f:
      text = f.read().splitlines()
  except OSError:
    return "(no log)"
  return "\n".join("    | " + line[:300] for line in text[-lines:])


class LogWatch:
  """Reads a growing stderr log and keeps what the training loop reported so far."""

  def __init__(self, path: str):
    self.path = path
    self.offset = 0
    self.partial = ""
    self.reached: int | None = None  # the last step a step line shows
    self.resumed_from: int | None = None  # 0 for a new run
    self.stopped: list[tuple[int, int]] = []  # (signal, step) of the stop line
    self.damaged: list[int] = []
    self.tracebacks = 0
    self.last_line = ""

  def update(self) -> None:
    try:
      with open(self.path, errors="replace") as f:
        f.seek(self.offset)
        text = f.read()
        self.offset = f.tell()
    except FileNotFoundError:
      return
    lines = (self.partial + text).split("\n")
    self.partial = lines.pop()
    for line in lines:
      self._line(line)

  def finish(self) -> None:
    """Reads the rest once the process has exited (a last line without a newline included)."""
    self.update()
    if self.partial:
      self._line(self.partial)
      self.partial = ""

  def _line(self, line: str) -> None:
    if line.strip():
      self.last_line = line
    match = STEP_LINE.search(line) or FIRST_STEP.search(line)
    if match:
      self.reached = max(self.reached or 0, int(match.group(1)))
      return
    if NEW_RUN in line:
      self.resumed_from = 0
    elif (match := RESUMED.search(line)):
      self.resumed_from = int(match.group(1))
    elif (match := STOPPED.search(line)):
      self.stopped.append((int(match.group(1)), int(match.group(2))))
    elif (match := DAMAGED.search(line)):
      self.damaged.append(int(match.group(1)))
    elif line.startswith("Traceback (most recent call last)"):
      self.tracebacks += 1


@dataclasses.dataclass
class Start:
  """One start of the command (all its processes)."""

  index: int
  logs: list[str]
  procs: list[subprocess.Popen]
  watches: list[LogWatch]
  launched: float
  first_step_s: float | None = None
  ended: float | None = None
  exits: list[int | None] = dataclasses.field(default_factory=list)

  @property
  def chief(self) -> LogWatch:
    return self.watches[0]

  def poll(self) -> bool:
    """Updates the chief's log; whether every process has exited."""
    self.chief.update()
    if self.first_step_s is None and self.chief.reached is not None:
      self.first_step_s = time.monotonic() - self.launched
    return all(p.poll() is not None for p in self.procs)

  def collect(self) -> None:
    self.ended = time.monotonic()
    self.exits = [p.returncode for p in self.procs]
    for watch in self.watches:
      watch.finish()
    if self.first_step_s is None and self.chief.reached is not None:
      self.first_step_s = self.ended - self.launched

  def kill(self) -> None:
    for proc in self.procs:
      if proc.poll() is None:
        proc.kill()
    for proc in self.procs:
      proc.wait()

  def describe(self) -> str:
    parts = [f"start {self.index}: exit statuses {self.exits}"]
    for i, path in enumerate(self.logs):
      parts.append(f"  process {i} stderr ({path}), last lines:\n{_tail(path)}")
    return "\n".join(parts)


@dataclasses.dataclass
class Fault:
  kind: str  # "kill" or "term"
  target: int  # the step line to wait for
  delay: float  # extra seconds after it
  process: int  # the process a SIGTERM goes to
  start: Start | None = None
  signalled_at: int | None = None  # the last step the log showed when the signal was sent
  next_resumed: int | None = None

  @property
  def label(self) -> str:
    return "kill -9" if self.kind == "kill" else "SIGTERM"

  @property
  def lost(self) -> int:
    reached = self.start.chief.reached if self.start else None
    if reached is None or self.next_resumed is None:
      return 0
    return max(0, reached - self.next_resumed)


@dataclasses.dataclass
class ModeResult:
  processes: int
  faulted_dir: str
  reference_dir: str
  faults: list[Fault] = dataclasses.field(default_factory=list)
  starts: list[Start] = dataclasses.field(default_factory=list)
  planned: int = 0
  wall_s: float = 0.0
  reference_s: float = 0.0
  failure: str | None = None
  notes: list[str] = dataclasses.field(default_factory=list)
  difference: float | None = None
  leaves: int = 0
  log_every: int = 1


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _commands(args: argparse.Namespace, workdir: str, processes: int) -> list[list[str]]:
  base = [sys.executable, "-m", "ganjax.main", "--config=dcgan", f"--workdir={workdir}",
          "--config.dataset=synthetic:64", "--config.image_size=8", "--config.batch_size=8",
          "--config.generator.width=4", "--config.generator.z_dim=8",
          "--config.discriminator.width=4", f"--config.num_train_steps={args.steps}",
          f"--config.checkpoint_every_steps={args.checkpoint_every}",
          f"--config.log_every_steps={args.log_every}",
          f"--config.sample_every_steps={10 * args.steps}"]
  if processes == 1:
    return [base]
  port = _free_port()  # one port for every start of this run: the same command each time
  return [base + ["--config.distributed.enabled=True",
                  f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                  f"--config.distributed.num_processes={processes}",
                  f"--config.distributed.process_id={i}"] for i in range(processes)]


def _child_env(cache: str) -> dict[str, str]:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
  env.update({
      "JAX_PLATFORMS": "cpu",
      # ganjax's own cache setting wins over JAX's: both name the shared directory.
      "GANJAX_COMPILATION_CACHE": cache,
      "JAX_COMPILATION_CACHE_DIR": cache,
      "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
      "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
  })
  return env


class Runner:
  """Starts the commands of one run; every process it started is killed on the way out."""

  def __init__(self, commands: list[list[str]], env: dict[str, str], log_dir: str, name: str):
    self.commands, self.env, self.log_dir, self.name = commands, env, log_dir, name
    self.starts: list[Start] = []

  def launch(self) -> Start:
    index = len(self.starts)
    logs, procs = [], []
    launched = time.monotonic()
    for i, command in enumerate(self.commands):
      path = os.path.join(self.log_dir, f"{self.name}.start{index:02d}.p{i}.log")
      with open(path, "w") as err, open(path[:-4] + ".stdout", "w") as out:
        # A session of its own: a Ctrl-C of this script does not reach the runs.
        procs.append(subprocess.Popen(command, cwd=REPO_ROOT, env=self.env, stdout=out,
                                      stderr=err, start_new_session=True))
      logs.append(path)
    start = Start(index, logs, procs, [LogWatch(p) for p in logs], launched)
    self.starts.append(start)
    return start

  def kill_all(self) -> None:
    for start in self.starts:
      start.kill()


def _wait_exit(start: Start, timeout: float, what: str, grace: float = 60) -> None:
  """Waits for every process; one failed process leaves the others `grace` seconds (they
  would wait in their collectives), then they are killed."""
  deadline = time.monotonic() + timeout
  while not start.poll():
    if any(p.returncode not in (None, 0) for p in start.procs):
      deadline = min(deadline, time.monotonic() + grace)
    if time.monotonic() > deadline:
      start.kill()
      start.collect()
      raise Failure(f"{what}: still running after {timeout:.0f} s or {grace:.0f} s after "
                    f"another process failed (killed)\n{start.describe()}")
    time.sleep(0.05)
  start.collect()


def _wait_for_step(start: Start, target: int, timeout: float) -> bool:
  """Waits for a step line >= target; False if every process exited first (all with 0)."""
  deadline = time.monotonic() + timeout
  while True:
    done = start.poll()
    if start.chief.reached is not None and start.chief.reached >= target and not done:
      return True
    if done or any(p.returncode not in (None, 0) for p in start.procs):
      if not done:  # one process failed: the others would wait in their collectives
        start.kill()
      start.collect()
      if all(code == 0 for code in start.exits):
        return False
      raise Failure(f"start {start.index} exited before step {target}\n{start.describe()}")
    if time.monotonic() > deadline:
      start.kill()
      start.collect()
      raise Failure(f"start {start.index}: no step line >= {target} in {timeout:.0f} s "
                    f"(killed)\n{start.describe()}")
    time.sleep(0.02)


def _sleep_watching(start: Start, seconds: float) -> bool:
  """Sleeps while the run goes on; False if every process exited meanwhile."""
  deadline = time.monotonic() + seconds
  while time.monotonic() < deadline:
    if any(p.poll() is not None for p in start.procs):
      return False
    time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
  return all(p.poll() is None for p in start.procs)


def _plan(args: argparse.Namespace, processes: int) -> list[Fault]:
  rng = random.Random(f"{args.seed}/{processes}")
  last_target = max(1, int(TARGET_FRACTION * args.steps))
  targets = sorted(rng.randint(1, last_target) for _ in range(args.faults))
  return [Fault(kind=rng.choice(("kill", "term")), target=t,
                delay=rng.uniform(0.0, args.max_delay), process=rng.randrange(processes))
          for t in targets]


def _inject(start: Start, fault: Fault, args: argparse.Namespace) -> bool:
  """Delivers `fault` to the running `start`; False if the run reached its end first."""
  if not _wait_for_step(start, fault.target, args.timeout):
    return False
  if not _sleep_watching(start, fault.delay):
    _wait_exit(start, args.stop_timeout, f"start {start.index}")
    if all(code == 0 for code in start.exits):
      return False
    raise Failure(f"start {start.index} exited on its own\n{start.describe()}")
  start.chief.update()
  fault.start, fault.signalled_at = start, start.chief.reached
  if fault.kind == "kill":
    for proc in start.procs:  # all of them at once
      os.kill(proc.pid, signal.SIGKILL)
    _wait_exit(start, args.stop_timeout, f"start {start.index} after kill -9")
    if any(code != -signal.SIGKILL for code in start.exits):
      raise Failure(f"kill -9: exit statuses {start.exits}, expected -9 each\n"
                    f"{start.describe()}")
    return True
  start.procs[fault.process].send_signal(signal.SIGTERM)
  _wait_exit(start, args.stop_timeout, f"start {start.index} after SIGTERM to process "
             f"{fault.process}")
  if any(code != EXIT_PREEMPTED for code in start.exits):
    raise Failure(f"SIGTERM to process {fault.process}: exit statuses {start.exits}, expected "
                  f"{EXIT_PREEMPTED} each\n{start.describe()}")
  stops = [w.stopped[-1] if w.stopped else None for w in start.watches]
  if any(s is None or s[0] != signal.SIGTERM for s in stops) or len({s[1] for s in stops}) != 1:
    raise Failure(f"SIGTERM: stop lines {stops}, expected one common step, signal 15\n"
                  f"{start.describe()}")
  return True


def _check_resume(result: ModeResult, fault: Fault, start: Start) -> None:
  """The start after `fault` resumed from the right step (read once it took its first step)."""
  fault.next_resumed = start.chief.resumed_from
  if fault.next_resumed is None:
    raise Failure(f"start {start.index} did not say where it resumed from\n{start.describe()}")
  reached = fault.start.chief.reached or 0
  if fault.kind == "term":
    saved = fault.start.watches[0].stopped[-1][1]
    if fault.next_resumed != saved:
      raise Failure(f"SIGTERM saved step {saved} but start {start.index} resumed from "
                    f"{fault.next_resumed}\n{start.describe()}")
  elif fault.next_resumed > reached and result.log_every == 1:
    result.notes.append(f"start {start.index} resumed from {fault.next_resumed}, past the "
                        f"last step line {reached} of the killed start")


def run_mode(args: argparse.Namespace, processes: int, root: str, env: dict[str, str]
             ) -> ModeResult:
  mode_dir = os.path.join(root, f"p{processes}")
  faulted, reference = os.path.join(mode_dir, "faulted"), os.path.join(mode_dir, "uninterrupted")
  log_dir = os.path.join(mode_dir, "logs")
  os.makedirs(log_dir, exist_ok=True)
  result = ModeResult(processes, faulted, reference, log_every=args.log_every)
  plan = _plan(args, processes)
  result.planned = len(plan)
  runner = Runner(_commands(args, faulted, processes), env, log_dir, "faulted")
  ref_runner = Runner(_commands(args, reference, processes), env, log_dir, "uninterrupted")

  def say(text: str) -> None:
    print(f"[{processes}p] {text}", flush=True)

  try:
    began = time.monotonic()
    pending = list(plan)
    previous: Fault | None = None
    while True:
      start = runner.launch()
      if previous is not None:  # where this start resumed: known at its first step line
        if not _wait_for_step(start, 0, args.timeout):
          start.chief.finish()
        _check_resume(result, previous, start)
        say(f"  start {start.index}: resumed from step {previous.next_resumed} "
            f"({previous.lost} steps lost)")
        previous = None
      if not pending:
        _wait_exit(start, args.timeout, f"start {start.index} (the last)")
        if start.exits != [0] * processes:
          raise Failure(f"the last start failed\n{start.describe()}")
        if start.chief.reached != args.steps:
          raise Failure(f"the last start ended at step {start.chief.reached}, not "
                        f"{args.steps}\n{start.describe()}")
        break
      fault = pending.pop(0)
      if not _inject(start, fault, args):
        say(f"  start {start.index} reached step {start.chief.reached} before fault "
            f"{len(result.faults) + 1} ({fault.label} after step {fault.target}) landed")
        if start.chief.reached != args.steps:
          raise Failure(f"start {start.index} exited with 0 at step {start.chief.reached}, "
                        f"not {args.steps}\n{start.describe()}")
        break
      result.faults.append(fault)
      to = f" to process {fault.process}" if fault.kind == "term" and processes > 1 else ""
      saved = (f", checkpoint {fault.start.chief.stopped[-1][1]} saved"
               if fault.kind == "term" else "")
      say(f"fault {len(result.faults)}/{len(plan)}: {fault.label}{to} at step "
          f"{fault.signalled_at} (target {fault.target} + {fault.delay:.2f} s): exit "
          f"{start.exits}{saved}")
      if fault.kind == "term":
        for i, watch in enumerate(start.watches):
          if not STOPPED.search(watch.last_line):
            result.notes.append(f"start {start.index}, process {i}: the last stderr line after "
                                f"SIGTERM is not the stop line: {watch.last_line[:200]!r}")
      previous = fault
    result.wall_s = time.monotonic() - began
    say(f"faulted run done in {result.wall_s:.1f} s; uninterrupted run ...")
    began = time.monotonic()
    ref = ref_runner.launch()
    _wait_exit(ref, args.timeout, "the uninterrupted run")
    result.reference_s = time.monotonic() - began
    if ref.exits != [0] * processes or ref.chief.reached != args.steps:
      raise Failure(f"the uninterrupted run failed\n{ref.describe()}")
  except Failure as e:
    result.failure = str(e)
    say(f"FAILED: {e}")
  finally:
    runner.kill_all()
    ref_runner.kill_all()
    result.starts = runner.starts
  for start in runner.starts + ref_runner.starts:
    for watch in start.watches:
      if watch.tracebacks and result.failure is None:
        result.failure = (f"a traceback in {watch.path}, last lines:\n{_tail(watch.path)}")
  return result


def _state_leaves(state: Any) -> tuple[Any, list[Any]]:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  parts = [state.generator.params, state.discriminator.params, state.generator.collections,
           state.discriminator.collections, state.generator.opt_state,
           state.discriminator.opt_state]
  if state.ema_params is not None:
    parts.append(state.ema_params)
  leaves, tree = jax.tree.flatten(parts)
  return tree, [np.asarray(x) for x in leaves]


def compare(result: ModeResult) -> None:
  """Sets ``result.difference``: max |faulted - uninterrupted| over the final states."""
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  from absl import logging  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ganjax import tasks  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.ERROR)  # orbax's notes on reading a checkpoint read-only
  got = tasks.load_run(result.faulted_dir).state
  expected = tasks.load_run(result.reference_dir).state
  steps = (int(got.step), int(expected.step))
  tree_got, leaves_got = _state_leaves(got)
  tree_expected, leaves_expected = _state_leaves(expected)
  if tree_got != tree_expected or steps[0] != steps[1]:
    result.failure = (f"the final states differ in structure or step ({steps}): "
                      f"{tree_got} vs {tree_expected}")
    result.difference = float("inf")
    return
  diffs = [float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
           for a, b in zip(leaves_got, leaves_expected) if a.shape == b.shape]
  if len(diffs) != len(leaves_got):
    result.failure = "leaves of the final states differ in shape"
    result.difference = float("inf")
    return
  result.leaves = len(diffs)
  result.difference = max(diffs, default=0.0)


def summarize(result: ModeResult, steps: int) -> list[str]:
  name = "1 process" if result.processes == 1 else f"{result.processes} processes"
  kinds = collections.Counter(f.label for f in result.faults)
  codes = collections.Counter(code for f in result.faults for code in f.start.exits)
  statuses = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items())) or "none"
  kills = [f for f in result.faults if f.kind == "kill"]
  terms = [f for f in result.faults if f.kind == "term"]
  damaged = sorted({s for st in result.starts for w in st.watches for s in w.damaged})
  trained = sum(st.chief.reached - (st.chief.resumed_from or 0)
                for st in result.starts if st.chief.reached is not None)
  lost = sum(f.lost for f in result.faults)
  kill_steps = ", ".join(f"{f.start.chief.reached}->{f.next_resumed}" for f in kills) or "-"
  term_steps = ", ".join(f"{f.signalled_at}->{f.next_resumed}" for f in terms) or "-"
  firsts = [st.first_step_s for st in result.starts[1:] if st.first_step_s is not None]
  first0 = result.starts[0].first_step_s if result.starts else None
  lines = [f"== {name} ==",
           f"faults_survived={len(result.faults)} of {result.planned} planned: kill -9 "
           f"x{kinds['kill -9']}, SIGTERM x{kinds['SIGTERM']}; exit statuses seen (per "
           f"process): {statuses}",
           f"restarts={max(0, len(result.starts) - 1)} steps_lost={lost} (lost and trained "
           f"again; per kill -9, last step line -> resumed from: {kill_steps})",
           f"SIGTERM, step at the signal -> checkpointed and resumed from: {term_steps}",
           f"damaged_checkpoints_set_aside={len(damaged)}; steps trained over all starts: "
           f"{trained} for {steps} steps",
           f"time to the first step: start 0 {_secs(first0)} (compiling into the cache); "
           f"restarts median {_secs(statistics.median(firsts) if firsts else None)}, max "
           f"{_secs(max(firsts) if firsts else None)}",
           f"wall_time={result.wall_s:.1f} s (faulted run, all starts); uninterrupted run "
           f"{result.reference_s:.1f} s",
           f"max_abs_difference={result.difference} ({result.leaves} leaves of the final "
           f"states)"]
  lines += [f"note: {note}" for note in result.notes]
  if result.failure:
    lines.append(f"FAILED: {result.failure}")
  return lines


def _secs(value: float | None) -> str:
  return "-" if value is None else f"{value:.1f} s"


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  keep = args.workdir is not None
  root = os.path.abspath(args.workdir) if keep else tempfile.mkdtemp(prefix="fault-injection-")
  for processes in args.process_counts:
    mode_dir = os.path.join(root, f"p{processes}")
    if os.path.isdir(mode_dir) and os.listdir(mode_dir):
      sys.exit(f"{mode_dir} is not empty: runs there would resume; choose another --workdir")
  cache = tempfile.mkdtemp(prefix="fault-injection-jax-cache-")
  env = _child_env(cache)
  print(f"runs in {root}; compilation cache {cache}; {args.steps} steps, {args.faults} faults "
        f"per mode, seed {args.seed}, checkpoint every {args.checkpoint_every} steps",
        flush=True)
  results = []
  try:
    for processes in args.process_counts:
      results.append(run_mode(args, processes, root, env))
    for result in results:
      if result.failure is None:
        try:
          compare(result)
        except Exception as e:  # pylint: disable=broad-except
          result.failure = f"cannot compare the final states: {type(e).__name__}: {e}"
  finally:
    shutil.rmtree(cache, ignore_errors=True)
  print()
  for result in results:
    print("\n".join(summarize(result, args.steps)))
  failed = any(r.failure or r.difference != 0.0 for r in results)
  differences = [r.difference for r in results if r.difference is not None]
  total = max(differences) if len(differences) == len(results) else None
  print(f"faults_survived={sum(len(r.faults) for r in results)} max_abs_difference={total}")
  if failed and not keep:
    print(f"kept the runs and logs in {root}", file=sys.stderr)
  elif not keep:
    shutil.rmtree(root, ignore_errors=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
