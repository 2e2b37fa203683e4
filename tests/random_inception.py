"""pytorch-fid's FID Inception v3 with random weights, for parity checks without the real ones.

pytorch-fid's ``fid_inception_v3()`` downloads the TF-ported weights; this builds the same
network with the download patched out and draws weights that keep activations O(1) through
the 94 conv-BN-ReLU layers (PyTorch's default init, or identity batch norm, would make them
vanish or explode):

* conv weights ~ N(0, 2 / fan_in) (He et al. 2015: the second moment survives a ReLU layer);
* batch norm: weight ~ 1 + 0.1 N(0, 1), bias ~ 0.1 N(0, 1), running_mean ~ 0.1 N(0, 1),
  running_var ~ U(0.5, 1.5);
* fc weight ~ N(0, 1 / 2048), bias ~ N(0, 1) (the bias is not used by the unbiased logits).

`random_state_dict(seed)` is a state dict in the layout of pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth``; `pytorch_fid_model(state_dict)` is
``pytorch_fid.inception.InceptionV3([3])`` (2048-d pool features, resize and normalization on)
loaded with it. PyTorch is a test/benchmark-only dependency: only tests and experiments import
this module.
"""

from __future__ import annotations

from unittest import mock

import torch
from pytorch_fid import inception as pfi


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
  """Random weights for pytorch-fid's FID Inception v3 (see the module docstring)."""
  with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: None), \
       mock.patch.object(torch.nn.Module, "load_state_dict", lambda *a, **k: None):
    net = pfi.fid_inception_v3()
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.Conv2d):
        fan_in = m.weight[0].numel()
        m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
      elif isinstance(m, torch.nn.BatchNorm2d):
        n = m.num_features
        m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
        m.bias.copy_(0.1 * torch.randn(n, generator=g))
        m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
        m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
      elif isinstance(m, torch.nn.Linear):
        m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)
        m.bias.copy_(torch.randn(m.bias.shape, generator=g))
  return net.state_dict()


def pytorch_fid_model(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
  """pytorch-fid's ``InceptionV3([3])`` in eval mode, with `state_dict` as its weights."""
  with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state_dict):
    return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
