"""What the models need to know about a data set: the image shape and the classes."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """The image shape ``(H, W, C)`` and the class names of a data set."""

  image_shape: tuple[int, int, int]
  class_names: tuple[str, ...]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)
