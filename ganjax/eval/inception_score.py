"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs").

``IS = exp(E_x KL(p(y|x) || p(y)))`` with ``p(y|x) = softmax(logits_unbiased)`` over the 1008
classes of the FID Inception network (pool features times the fc weights, no bias, as in the
original TensorFlow code, openai/improved-gan ``inception_score/model.py``) and ``p(y)`` the
mean of ``p(y|x)`` over a split. The N images are cut into `splits` consecutive parts
``[i N // splits, (i + 1) N // splits)``; the score is the mean and the (population) standard
deviation of the per-split scores.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ganjax.errors import ConfigError


def inception_score(logits_unbiased: np.ndarray, splits: int = 10) -> tuple[float, float]:
  """(mean, std) of the Inception Score over `splits` parts of the images' logits [N, K]."""
  logits = np.asarray(logits_unbiased, np.float64)
  n = len(logits)
  if logits.ndim != 2 or splits < 1 or n < splits:
    raise ConfigError(f"Inception Score needs logits [N, K] with N >= splits={splits}, got "
                      f"shape {logits.shape}")
  log_p = logits - special.logsumexp(logits, axis=1, keepdims=True)
  scores = []
  for i in range(splits):
    part = log_p[i * n // splits:(i + 1) * n // splits]
    log_py = special.logsumexp(part, axis=0) - np.log(len(part))  # log mean_x p(y|x)
    kl = np.sum(np.exp(part) * (part - log_py), axis=1)
    scores.append(np.exp(np.mean(kl)))
  return float(np.mean(scores)), float(np.std(scores))
