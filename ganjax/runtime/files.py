"""Atomic writes of the files a run directory holds: a temporary file, then a rename.

A reader (a resumed run, a report, a sampling tool) therefore sees either the old file or the
whole new one, never a partial write.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import numpy as np
from PIL import Image


def _atomic(path: str, write: Callable[[str], None], suffix: str = ".tmp") -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + suffix
  write(tmp)
  os.replace(tmp, path)


def write_json(path: str, value: Any) -> None:
  """Writes `value` as indented JSON to `path`, atomically."""

  def write(tmp: str) -> None:
    with open(tmp, "w") as f:
      json.dump(value, f, indent=2)

  _atomic(path, write)


def write_text(path: str, text: str) -> None:
  """Writes `text` (UTF-8) to `path`, atomically."""

  def write(tmp: str) -> None:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)

  _atomic(path, write)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a uint8 [H, W, C] image as PNG, atomically."""
  image = np.asarray(image)
  if image.shape[-1] == 1:
    image = image[..., 0]
  _atomic(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def write_npz(path: str, **arrays: np.ndarray) -> None:
  """Writes arrays to an ``.npz`` file, atomically (the temporary file is named per process:
  the processes of one run may write the same file)."""
  _atomic(path, lambda tmp: np.savez(tmp, **arrays), suffix=f".{os.getpid()}.tmp.npz")
