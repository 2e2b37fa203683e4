"""Evaluation: FID and Inception Score with a Flax port of pytorch-fid's Inception network.

`inception` (the network and the extractor), `convert_inception` (pytorch-fid weights ->
Flax), `fid` (FID, statistics, reference cache, command line), `inception_score`,
`in_training` (periodic FID / IS and the best-FID checkpoint).
"""
