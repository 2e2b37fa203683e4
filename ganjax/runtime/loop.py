"""The training loop every task shares.

A task is an assembly: a pure state initializer and its key, a compiled step
``step(state, batch) -> (state, metrics)``, the batches of steps ``start + 1, start + 2, ...``
and a list of periodic `Action`s (console lines, sample grids, evaluations). `train(task, run)`
runs it in a `Run` directory:

1. restore the latest checkpoint or initialize the state;
2. for each step: take the next batch, dispatch the step, read the *previous* step's metrics
   while this one runs (`MetricsInFlight`; a non-finite value stops the run with a one-line
   error and writes no checkpoint);
3. after the step, each due action in order (clu's `PeriodicCallback`: every ``every_steps``
   and at the last step), each seeing the metrics of every step up to this one; then the
   checkpoint every ``checkpoint_every_steps`` and at the last step;
4. on SIGTERM / SIGINT (with several processes: at the step JAX's preemption sync manager
   gives all of them): checkpoint the step just done and raise `TrainingInterrupted`. A long
   action (an evaluation) that sees the signal raises `Interrupted`: the step is checkpointed
   and the resumed run runs that action on the restored state before its first step.

The batches of a step are a pure function of (seed, step) and the step's randomness comes from
the state, so a run resumed from its checkpoint ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterator, Protocol

from absl import logging
from clu import periodic_actions
import jax

from ganjax.runtime.metrics import Metrics, MetricLog, MetricsInFlight, host_metrics
from ganjax.runtime.run import Run
from ganjax.runtime.signals import Interrupted, StopSignal

State = Any


class Batches(Protocol):
  """This process's slices of the batches of consecutive steps, as (step, batch) pairs."""

  def __next__(self) -> tuple[int, Any]: ...

  def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Action:
  """``fn(step, state)`` every `every_steps` steps (0 = never) and at the last step."""

  name: str
  every_steps: int
  fn: Callable[[int, State], None]


@dataclasses.dataclass(frozen=True)
class Task:
  """What `train` runs.

  Attributes:
    init: the pure state initializer, ``init(rng) -> state``.
    rng: its key.
    step: ``step(state, global batch) -> (state, device metrics)``, compiled (the state donated).
    batches: ``batches(start)`` -> this process's slices of the batches of steps start + 1, ...
    to_global: this process's slice of a batch -> the global batch on the mesh.
    total_steps: the step the run ends at.
    checkpoint_every_steps: how often to checkpoint (and always at the end and on a signal).
    logs: the accumulators every step's host metrics are added to (owned by `actions`).
    actions: periodic actions, in the order they run after a step.
    metric_values: device metrics -> host floats by name.
    step_of: the number of completed steps of a state.
    on_start: called with the start step before the first step (a resumed run: its step).
    on_end: called with the final state when the run reached `total_steps`.
  """

  init: Callable[[jax.Array], State]
  rng: jax.Array
  step: Callable[[State, Any], tuple[State, dict[str, jax.Array]]]
  batches: Callable[[int], Batches]
  to_global: Callable[[Any], Any]
  total_steps: int
  checkpoint_every_steps: int
  logs: tuple[MetricLog, ...] = ()
  actions: tuple[Action, ...] = ()
  metric_values: Callable[[dict[str, jax.Array]], Metrics] = host_metrics
  step_of: Callable[[State], int] = lambda state: int(jax.device_get(state.step))
  on_start: Callable[[int], None] | None = None
  on_end: Callable[[State], None] | None = None


def _periodic(every_steps: int, total: int, fn: Callable[[int], None]
              ) -> periodic_actions.PeriodicCallback:
  return periodic_actions.PeriodicCallback(
      every_steps=every_steps or None, on_steps=[total],
      callback_fn=lambda step, t: fn(step), pass_step_and_time=True)


def _steps(batches: Batches, start: int, total: int) -> Iterator[tuple[int, Any]]:
  for step in range(start + 1, total + 1):
    yield step, next(batches)[1]


def train(task: Task, run: Run) -> State:
  """Trains `task` in `run` to ``task.total_steps``, resuming from the latest checkpoint."""
  state = run.restore_or_init(task.init, task.rng)
  start, total = task.step_of(state), task.total_steps
  pending = run.pending(start)
  for action in task.actions:  # interrupted by a stop at the restored step: run them first
    if action.name in pending:
      logging.info("step %d: running the %s interrupted by the last stop", start, action.name)
      action.fn(start, state)
  if start >= total:
    logging.info("run in %s is at step %d >= %d: nothing to do", run.workdir, start, total)
    return state
  if task.on_start is not None:
    task.on_start(start)
  for log in task.logs:
    log.restart_clock(start)
  in_flight = MetricsInFlight(list(task.logs), run.checkpoint_text, task.metric_values)
  current = {"state": state}

  def after_drain(action: Action) -> Callable[[int], None]:
    def call(step: int) -> None:
      in_flight.drain(step)
      try:
        action.fn(step, current["state"])
      except Interrupted:  # a long action saw the stop signal: save, and redo it on resume
        run.save(step, current["state"])
        run.write_pending(step, [action.name])
        raise run.stop.interruption(step) from None
    return call

  actions = [_periodic(a.every_steps, total, after_drain(a)) for a in task.actions]
  actions.append(_periodic(task.checkpoint_every_steps, total,
                           after_drain(Action("checkpoint", 0, run.save))))
  batches = task.batches(start)
  started = time.monotonic()
  try:
    with StopSignal() as stop:
      run.stop = stop
      for step, local in _steps(batches, start, total):
        state, metrics = task.step(state, task.to_global(local))
        current["state"] = state
        in_flight.push(step, metrics)
        in_flight.drain(step - 1)  # the previous step's metrics: one step stays in flight
        if step == start + 1:
          in_flight.drain(step)
          logging.info("step %d took %.1f s (including compilation)", step,
                       time.monotonic() - started)
          for log in task.logs:
            log.restart_clock(step)
        for action in actions:
          action(step)
        if step != total and stop.should_stop(step):
          in_flight.drain(step)
          run.save(step, state)
          raise stop.interruption(step)
  finally:
    run.stop = None
    batches.close()
    run.flush()
  if task.on_end is not None:
    task.on_end(state)
  return state
