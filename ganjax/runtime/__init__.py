"""The runtime every task shares: the step loop and what surrounds it.

* `loop` -- `Task` (a pure step, a state initializer, batches, periodic actions) and `train`,
  the one loop that runs any task: resume or initialize, one step in flight, periodic actions,
  checkpoints, the stop signal and the non-finite check;
* `run` -- `Run`, a run directory: writers, checkpoints, ``run_info.json``;
* `run_info` -- ``run_info.json``: the config and data spec a run was trained with;
* `checkpoints` -- orbax checkpoints of a state pytree;
* `metrics` -- console lines, metric accumulation and the metric writers;
* `metric_kinds` -- the metrics file and the train / eval kind of a metric's name;
* `signals` -- SIGTERM / SIGINT as a flag the loop reads between steps;
* `mesh` -- the device mesh, shardings and global arrays of every process;
* `files` -- atomic JSON and PNG writes;
* `distributed` -- multi-host start-up.

A task (GAN, population, classifier) is an assembly of these pieces; the runtime imports no
task.
"""
