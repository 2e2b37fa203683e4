"""The trainers' loop helpers: metrics read one step late, the non-finite error, the writer."""

import glob
import math
import threading

from clu import metric_writers
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.errors import NonFiniteLossError
from ganjax.runtime import metrics
from ganjax.runtime.metrics import MetricLog, MetricsInFlight
from ganjax.runtime.run import last_checkpoint_text


def test_drain_reads_pending_steps_in_order_up_to_the_given_step():
  logs = [MetricLog(total_steps=10), MetricLog(total_steps=10)]
  in_flight = MetricsInFlight(logs, lambda: "unused")
  for step, loss in ((1, 1.0), (2, 2.0), (3, 4.0)):
    in_flight.push(step, {"loss": jnp.asarray(loss)})
  in_flight.drain(2)
  assert [s for s, _ in in_flight.pending] == [3]
  for log in logs:
    assert (log.count, log.sums) == (2, {"loss": 3.0})
  in_flight.drain(3)
  assert not in_flight.pending
  means, _ = logs[0].flush(3)
  assert means == {"loss": 7.0 / 3}


@pytest.mark.parametrize("saved", [None, 20])
def test_a_non_finite_metric_names_itself_its_step_and_the_last_checkpoint(saved):
  log = MetricLog(total_steps=30)
  in_flight = MetricsInFlight([log], lambda: last_checkpoint_text(saved))
  in_flight.push(21, {"d_loss": jnp.asarray(0.5), "g_loss": jnp.asarray(0.5)})
  in_flight.push(22, {"d_loss": jnp.asarray(math.inf), "g_loss": jnp.asarray(math.nan)})
  in_flight.push(23, {"d_loss": jnp.asarray(0.5), "g_loss": jnp.asarray(0.5)})
  with pytest.raises(NonFiniteLossError) as error:
    in_flight.drain(23)
  tail = ("no checkpoint was written" if saved is None
          else "the last checkpoint (step 20) is intact")
  assert str(error.value) == f"non-finite d_loss, g_loss at step 22; {tail}"
  assert log.count == 1  # step 21 only: nothing of the bad step is logged


def test_run_info_of_an_older_run_reads_back_over_todays_defaults(tmp_path):
  """Keys a run recorded before they existed take today's defaults: no reader needs a
  `config.get(key, default)`."""
  import json  # pylint: disable=g-import-not-at-top
  from ganjax.runtime.run_info import read_run_info  # pylint: disable=g-import-not-at-top
  old = {"seed": 3, "generator": {"name": "dcgan", "z_dim": 16, "width": 8, "norm": "x"}}
  (tmp_path / "run_info.json").write_text(json.dumps(
      {"config": old, "image_shape": [8, 8, 3], "class_names": ["a", "b"]}))
  config, spec = read_run_info(str(tmp_path))
  assert config.seed == 3 and config.generator.z_dim == 16 and config.generator.norm == "x"
  assert config.population.size == 0 and not config.distributed.enabled  # absent: defaults
  assert config.test_split == "test" and config.label_smoothing == 0.0
  assert spec.image_shape == (8, 8, 3) and spec.num_classes == 2


def test_metrics_jsonl_has_each_logged_step_once_after_an_interruption(tmp_path):
  """A run killed after logging steps past its last checkpoint resumes from the checkpoint: the
  lines of the steps it trains again are dropped first, and so is a line cut short."""
  import json  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  from ganjax import tasks  # pylint: disable=g-import-not-at-top
  from tests.tiny import tiny_config  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "run"
  config = tiny_config("dcgan", num_train_steps=6, log_every_steps=1, checkpoint_every_steps=4,
                       sample_every_steps=100)
  tasks.train_and_evaluate(config, str(workdir))
  # As if killed after logging step 6 (and half of a line) but before its checkpoint.
  shutil.rmtree(workdir / "checkpoints" / "6")
  with open(workdir / "metrics.jsonl", "a") as f:
    f.write('{"step": 7, "ti')
  config.num_train_steps = 8
  tasks.train_and_evaluate(config, str(workdir))
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  entries = [json.loads(line) for line in lines]
  assert [e["step"] for e in entries] == list(range(1, 9))
  assert all(e["kind"] == "train" and math.isfinite(e["d_loss"]) and e["time"] > 0
             for e in entries)


def test_an_error_cause_is_one_line_with_the_operating_systems_reason():
  from ganjax.runtime.checkpoints import first_line  # pylint: disable=g-import-not-at-top
  long_path = "/tmp/" + "x" * 400
  tensorstore = ValueError(
      f'OUT_OF_RANGE: Error writing "g/0" in OCDBT database at local file "{long_path}/": '
      f'Failed writing: "{long_path}/d/4ce": Failed to write 658 bytes to file 5: File too '
      "large [os_error_code='27'] [source locations='tensorstore/kvstore/file']\nsecond line")
  assert first_line(tensorstore) == "File too large [errno 27]"
  spec_after = ValueError("Failed writing: \"/x\" [tensorstore_spec='{\"sync\":true}'] "
                          "[os_error_code='28']")
  assert first_line(spec_after) == "No space left on device [errno 28]"
  assert first_line(OSError(28, "No space left on device")) == "[Errno 28] No space left on device"
  assert first_line(KeyError("")) == "''" and len(first_line(ValueError("y" * 999))) == 300


def test_a_populations_tensorboard_files_are_written_by_one_background_thread(tmp_path,
                                                                               monkeypatch):
  # TensorFlow's summary ops are not safe to call from two threads at once (make_writer).
  threads = []
  for method in ("write_scalars", "write_images"):
    original = getattr(metric_writers.SummaryWriter, method)
    def record(self, *args, _original=original, **kwargs):
      threads.append(threading.get_ident())
      return _original(self, *args, **kwargs)
    monkeypatch.setattr(metric_writers.SummaryWriter, method, record)
  writer, _ = metrics.make_writer(str(tmp_path), is_chief=True, members=3)
  for step in (1, 2):
    writer.write_scalars(step, {"d_loss": 1.0, **{f"member_{i}/d_loss": float(i)
                                                  for i in range(3)}})
    writer.write_images(step, {f"member_{i}/samples": np.zeros((4, 4, 3), np.float32)
                               for i in range(3)})
  writer.close()
  assert len(threads) == 2 * (4 + 3)
  assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
  for folder in ("", "member_0", "member_1", "member_2"):
    assert glob.glob(str(tmp_path / folder / "events.out.tfevents.*")), folder
