"""The file a run's metrics go to and the kind of each metric (training or evaluation).

Shared by the writers (`ganjax.runtime.metrics`, which import clu's TensorBoard writer and with
it TensorFlow) and the readers (`ganjax.report`, which so start without TensorFlow).
"""

from __future__ import annotations

METRICS_FILE = "metrics.jsonl"
TRAIN, EVAL = "train", "eval"
# Metrics of evaluations (kind "eval"): the scalar writers' interface has no kind, so it comes
# from the names (a population member's ``member_<i>/fid`` too).
EVAL_METRICS = ("fid", "inception_score", "inception_score_std", "kid", "kid_std", "precision",
                "recall", "density", "coverage", "d_test_class_acc", "d_test_class_loss")


def kind_of(name: str) -> str:
  """``'eval'`` for an evaluation metric's name (with any ``<prefix>/``), else ``'train'``."""
  return EVAL if name.rpartition("/")[2] in EVAL_METRICS else TRAIN
