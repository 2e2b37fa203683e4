"""Image grids (uint8 only at this edge; `ganjax.runtime.files.write_png` writes them)."""

from __future__ import annotations

import numpy as np

from ganjax.data.datasets import to_uint8


def make_grid(images: np.ndarray, rows: int, padding: int = 2, pad_value: int = 255
              ) -> np.ndarray:
  """Tiles images [N, H, W, C] (uint8, or float in [-1, 1]) into one uint8 image, row-major.

  Each row holds ceil(N / rows) images; `padding` pixels of `pad_value` separate them.
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    images = to_uint8(images)
  n, h, w, c = images.shape
  cols = -(-n // rows)
  grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value,
                 np.uint8)
  for i in range(n):
    r, col = divmod(i, cols)
    top, left = padding + r * (h + padding), padding + col * (w + padding)
    grid[top:top + h, left:left + w] = images[i]
  return grid
