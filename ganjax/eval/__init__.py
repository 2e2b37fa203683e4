"""Evaluation: FID and Inception Score with a Flax port of pytorch-fid's Inception network.

`inception` (the network and the extractor), `convert_inception` (pytorch-fid weights ->
Flax), `pth_reader` (pytorch-fid's ``.pth`` read without torch and without running pickled
code), `fid` (FID, statistics, reference cache), `inception_score`, `feature_metrics` (KID,
precision / recall, density / coverage from the same features), `sampling` (batched sampling
from a generator), `in_training` (periodic FID / IS and the best-FID checkpoint). The command
line is `ganjax.cli.fid`.
"""
