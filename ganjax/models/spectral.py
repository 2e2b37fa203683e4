"""Spectral normalization (Miyato, Kataoka, Koyama, Yoshida, ICLR 2018).

A weight W is replaced by W / sigma(W), sigma the largest singular value, estimated by power
iteration on the weight reshaped to a matrix ``[fan_in, fan_out]`` (every axis but the last,
by the output axis; the transpose of PyTorch's ``[out, in * kh * kw]``, which has the same
singular values):

    u <- normalize(W^T v),  v <- normalize(W u),  sigma = v^T W u

with ``normalize(x) = x / max(||x||, eps)``: the order of PyTorch's
``torch.nn.utils.parametrizations.spectral_norm`` (whose ``u = normalize(W_t v)`` is our first
line for ``W_t = W^T``); the older ``torch.nn.utils.spectral_norm`` used by
PyTorch-StudioGAN runs the same iteration shifted by half a step. u (``[fan_out]``) and v
(``[fan_in]``) live in the non-trainable collection ``'spectral'`` (`SPECTRAL`), are never
differentiated, and sigma is differentiated through W only, as in PyTorch.

When does u move? A layer runs one power iteration (and stores the new u, v) exactly when the
``'spectral'`` collection is mutable in the ``apply`` call; otherwise it uses the stored u, v
as they are (sigma = v^T W u), as PyTorch does in eval mode. The training step
(`ganjax.gan.steps`) makes ``'spectral'`` mutable only in the first training-mode application of
each player per update of that player: the discriminator's pass on the real batch of each
critic update, and the generator's pass in the generator update. The other applications in the
step (the fake batch and the gradient-penalty pass, which therefore normalize by the same
sigma as the real pass; the discriminator inside the generator loss, with D's just-updated
weights; the generator producing the critic's fakes) use the stored u, v without iterating, so
each player's u advances by exactly one iteration per update of that player. Sampling
(``train=False``, nothing mutable) never updates u. At initialization v is drawn from a
normal distribution and normalized, and one iteration runs.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

SPECTRAL = "spectral"
"""The variable collection holding the power-iteration vectors u and v."""

DEFAULT_EPS = 1e-6  # PyTorch-StudioGAN's spectral_norm(..., eps=1e-6); PyTorch's default: 1e-12


def l2_normalize(x: Array, eps: float = DEFAULT_EPS) -> Array:
  """x / max(||x||_2, eps), as ``torch.nn.functional.normalize``."""
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def as_matrix(kernel: Array) -> Array:
  """A kernel as the matrix ``[fan_in, fan_out]`` whose spectral norm is normalized."""
  return jnp.reshape(kernel, (-1, kernel.shape[-1]))


def power_iteration(w: Array, v: Array, n_steps: int = 1,
                    eps: float = DEFAULT_EPS) -> tuple[Array, Array]:
  """`n_steps` power iterations on the matrix w ``[m, n]`` from v ``[m]``: returns (u, v)."""
  u = None
  for _ in range(n_steps):
    u = l2_normalize(w.T @ v, eps)
    v = l2_normalize(w @ u, eps)
  return u, v


def spectral_norm_estimate(w: Array, u: Array, v: Array) -> Array:
  """sigma = v^T W u for the matrix w ``[m, n]``."""
  return v @ (w @ u)


class SpectralNorm(nn.Module):
  """Wraps a layer so that each of its weights with ndim >= 2 is divided by its spectral norm.

  ``SpectralNorm(nn.Conv(64, (3, 3)))(x)``. The layer's parameters keep their names and shapes
  (under this module's scope); u and v are stored in ``'spectral'`` under the parameter's path.
  Biases and other vectors are left as they are.

  Attributes:
    layer: the wrapped layer (e.g. `flax.linen.Conv`, `flax.linen.Dense`, `flax.linen.Embed`).
    n_steps: power iterations per update (1, as Miyato et al.).
    eps: the normalization floor.
  """

  layer: nn.Module
  n_steps: int = 1
  eps: float = DEFAULT_EPS

  @nn.compact
  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    update = self.is_mutable_collection(SPECTRAL)

    def normalize_tree(tree):
      return jax.tree_util.tree_map_with_path(
          lambda path, w: self._normalize(path, w, update), tree)

    return nn.map_variables(
        lambda layer: layer(*args, **kwargs), mapped_collections="params",
        trans_in_fn=normalize_tree, init=self.is_initializing(),
        mutable=True)(self.layer)

  def _normalize(self, path: tuple[Any, ...], kernel: Array, update: bool) -> Array:
    if kernel.ndim < 2:
      return kernel
    name = "/".join(str(getattr(k, "key", k)) for k in path[1:] if str(getattr(k, "key", k))
                    != "params")
    w = as_matrix(kernel).astype(jnp.float32)
    fan_in, fan_out = w.shape
    eps = self.eps

    def init_v():
      return l2_normalize(jax.random.normal(self.make_rng("params"), (fan_in,)), eps)

    v_var = self.variable(SPECTRAL, f"{name}/v", init_v)
    u_var = self.variable(SPECTRAL, f"{name}/u", lambda: l2_normalize(
        jax.lax.stop_gradient(w).T @ v_var.value, eps))
    u, v = u_var.value, v_var.value
    if update:
      u, v = power_iteration(jax.lax.stop_gradient(w), v, self.n_steps, eps)
      u_var.value, v_var.value = u, v
    u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    sigma = spectral_norm_estimate(w, u, v)
    return (kernel / sigma.astype(kernel.dtype)).astype(kernel.dtype)


def maybe_spectral(make_layer: Callable[..., nn.Module], enabled: bool, name: str
                   ) -> Callable[..., Any]:
  """``make_layer(name=...)`` wrapped in `SpectralNorm` when enabled, else the bare layer.

  Either way the module is named `name` in its parent, and the parameter lives at
  ``name/kernel`` (bare) or ``name/layer/kernel`` (wrapped).
  """
  if enabled:
    return SpectralNorm(make_layer(parent=None), name=name)
  return make_layer(name=name)
