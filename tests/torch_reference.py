"""PyTorch reference of ganjax's CIFAR-10 DCGAN and WGAN-GP, for speed comparisons.

The networks are layer for layer those of `ganjax.models.dcgan` (PyTorch-StudioGAN's CIFAR
DCGAN shape, width w = 64, z_dim = 128):

  G: Linear(z -> 4*4*8w) -> [N, 8w, 4, 4] -> BN -> ReLU
     -> 3 x (ConvTranspose2d(k=4, s=2, p=1) halving channels -> BN -> ReLU)
     -> Conv3x3(w -> 3) -> tanh
  D: Conv3x3(3 -> w) -> LReLU
     -> 3 x (Conv4x4 s2 p1 -> norm -> LReLU -> Conv3x3 (2x channels) -> norm -> LReLU) ... see
     `Discriminator` for the exact order -> sum over H, W -> Linear(8w -> 1)

with every convolution biased, as in ganjax. The WGAN-GP critic is the same D with layer norm
(over C, H, W with a per-channel gain and bias, like ganjax's ``norm='layer'``) or no norm.

Training iterations (`DCGANIteration`, `WGANGPIteration`) follow ganjax's step: the critic
update(s) on a fresh latent batch each (the generator runs without building a graph), then one
generator update on a fresh latent batch with the critic's parameters frozen. Adam is PyTorch's
fused CPU/GPU kernel when available (its fastest form).

PyTorch is a test and benchmark dependency of ganjax: tests and experiments import this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
  """Normalizes each example over (C, H, W); per-channel gain and bias (ganjax 'layer')."""

  def __init__(self, channels: int, eps: float = 1e-5):
    super().__init__()
    self.eps = eps
    self.weight = nn.Parameter(torch.ones(channels))
    self.bias = nn.Parameter(torch.zeros(channels))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = F.layer_norm(x, x.shape[1:], eps=self.eps)
    return x * self.weight[:, None, None] + self.bias[:, None, None]


def _norm(kind: str, channels: int) -> nn.Module:
  if kind == "batch":
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
  if kind == "layer":
    return ChannelLayerNorm(channels)
  if kind == "none":
    return nn.Identity()
  raise ValueError(f"unknown norm {kind!r}; expected 'batch', 'layer' or 'none'")


def _dcgan_init(module: nn.Module) -> None:
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
    nn.init.normal_(module.weight, 0.0, 0.02)
    nn.init.zeros_(module.bias)


class Generator(nn.Module):

  def __init__(self, z_dim: int = 128, width: int = 64, channels_last: bool = False):
    super().__init__()
    self.width = width
    self.channels_last = channels_last
    self.project = nn.Linear(z_dim, 4 * 4 * 8 * width)
    self.project_bn = nn.BatchNorm2d(8 * width)
    ups, bns = [], []
    for i in range(3):
      c = 8 * width // 2**i
      ups.append(nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1))
      bns.append(nn.BatchNorm2d(c // 2))
    self.ups, self.bns = nn.ModuleList(ups), nn.ModuleList(bns)
    self.to_rgb = nn.Conv2d(width, 3, 3, padding=1)
    self.apply(_dcgan_init)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    x = self.project(z).view(z.shape[0], 8 * self.width, 4, 4)
    if self.channels_last:
      x = x.contiguous(memory_format=torch.channels_last)
    x = F.relu(self.project_bn(x))
    for up, bn in zip(self.ups, self.bns):
      x = F.relu(bn(up(x)))
    return torch.tanh(self.to_rgb(x))


class Discriminator(nn.Module):

  def __init__(self, width: int = 64, norm: str = "batch", negative_slope: float = 0.1):
    super().__init__()
    self.negative_slope = negative_slope
    layers = []  # (conv, norm or None)
    c_in = 3
    for i in range(3):
      c = width * 2**i
      layers.append((nn.Conv2d(c_in, c, 3, padding=1), None if i == 0 else _norm(norm, c)))
      layers.append((nn.Conv2d(c, c, 4, stride=2, padding=1), _norm(norm, c)))
      c_in = c
    layers.append((nn.Conv2d(c_in, 8 * width, 3, padding=1), _norm(norm, 8 * width)))
    self.convs = nn.ModuleList([conv for conv, _ in layers])
    self.norms = nn.ModuleList([n if n is not None else nn.Identity() for _, n in layers])
    self.adv = nn.Linear(8 * width, 1)
    self.apply(_dcgan_init)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    for conv, norm in zip(self.convs, self.norms):
      x = F.leaky_relu(norm(conv(x)), self.negative_slope)
    return self.adv(x.sum(dim=(2, 3)))[:, 0]


def _adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
  try:
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
  except (RuntimeError, TypeError):
    return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
  for p in module.parameters():
    p.requires_grad_(flag)


class _Iteration:
  """Shared set-up: models, optimizers, memory format.

  With ``compile_modules`` the forward (and, through AOTAutograd, backward) of G and D run as
  `torch.compile` graphs (Inductor); the parameters and optimizers are the eager modules'.
  """

  def __init__(self, generator: Generator, discriminator: Discriminator, lr: float,
               betas: tuple[float, float], batch_size: int, channels_last: bool,
               compile_modules: bool = False):
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.g = generator.to(memory_format=self.memory_format)
    self.d = discriminator.to(memory_format=self.memory_format)
    self.g_call = torch.compile(self.g) if compile_modules else self.g
    self.d_call = torch.compile(self.d) if compile_modules else self.d
    self.g_opt = _adam(self.g.parameters(), lr, betas)
    self.d_opt = _adam(self.d.parameters(), lr, betas)
    self.batch_size = batch_size
    self.z_dim = generator.project.in_features

  def _latents(self) -> torch.Tensor:
    return torch.randn(self.batch_size, self.z_dim)

  def _fake_no_grad(self) -> torch.Tensor:
    with torch.no_grad():
      return self.g_call(self._latents())

  def _generator_update(self, loss_fn) -> torch.Tensor:
    _set_requires_grad(self.d, False)
    self.g_opt.zero_grad(set_to_none=True)
    loss = loss_fn(self.d_call(self.g_call(self._latents())))
    loss.backward()
    self.g_opt.step()
    _set_requires_grad(self.d, True)
    return loss.detach()

  def to_device_format(self, images: torch.Tensor) -> torch.Tensor:
    """[..., H, W, C] float images (ganjax's NHWC) -> [..., C, H, W] in this memory format."""
    x = images.movedim(-1, -3)
    if x.ndim == 4:
      return x.contiguous(memory_format=self.memory_format)
    return torch.stack([b.contiguous(memory_format=self.memory_format) for b in x])


class DCGANIteration(_Iteration):
  """One D update on (real, G(z)) with the non-saturating loss, then one G update.

  D: softplus(-D(x)) + softplus(D(G(z))); G: softplus(-D(G(z))) (Goodfellow et al., 2014,
  the non-saturating generator loss). Adam(2e-4, betas=(0.5, 0.999)).
  """

  def __init__(self, batch_size: int = 64, width: int = 64, z_dim: int = 128,
               channels_last: bool = True, negative_slope: float = 0.1,
               compile_modules: bool = False):
    super().__init__(Generator(z_dim, width, channels_last),
                     Discriminator(width, "batch", negative_slope), 2e-4, (0.5, 0.999),
                     batch_size, channels_last, compile_modules)

  def __call__(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """real: [N, C, H, W] in this iteration's memory format."""
    fake = self._fake_no_grad()
    self.d_opt.zero_grad(set_to_none=True)
    d_loss = F.softplus(-self.d_call(real)).mean() + F.softplus(self.d_call(fake)).mean()
    d_loss.backward()
    self.d_opt.step()
    g_loss = self._generator_update(lambda out: F.softplus(-out).mean())
    return d_loss.detach(), g_loss


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
  """Gulrajani et al. 2017: E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat = eps x + (1 - eps) G(z)."""
  eps = torch.rand(real.shape[0], 1, 1, 1)
  x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
  out = critic(x_hat)
  (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
  return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class WGANGPIteration(_Iteration):
  """n_critic critic updates (each on its own real batch) then one generator update.

  Critic: D(G(z)) - D(x) + lambda * GP; generator: -D(G(z)). Adam(1e-4, betas=(0, 0.9)),
  lambda = 10, n_critic = 5 (Gulrajani et al., 2017, Algorithm 1).
  """

  def __init__(self, batch_size: int = 64, width: int = 64, z_dim: int = 128,
               channels_last: bool = True, norm: str = "layer", n_critic: int = 5,
               gp_weight: float = 10.0, negative_slope: float = 0.1):
    super().__init__(Generator(z_dim, width, channels_last),
                     Discriminator(width, norm, negative_slope), 1e-4, (0.0, 0.9), batch_size,
                     channels_last)
    self.n_critic = n_critic
    self.gp_weight = gp_weight

  def __call__(self, reals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """reals: [n_critic, N, C, H, W], each batch in this iteration's memory format."""
    for real in reals:
      fake = self._fake_no_grad()
      self.d_opt.zero_grad(set_to_none=True)
      d_loss = (self.d(fake).mean() - self.d(real).mean() +
                self.gp_weight * gradient_penalty(self.d, real, fake))
      d_loss.backward()
      self.d_opt.step()
    g_loss = self._generator_update(lambda out: -out.mean())
    return d_loss.detach(), g_loss
