"""Image data: data sets in host memory, the (seed, step) -> batch contract, augmentation.

* `datasets` -- tfds data sets, image folders and synthetic data (`load_dataset`), and the
  training batches of a step (`training_batch`, `BatchIterator`);
* `augment` -- numpy augmentation of uint8 batches in the input pipeline (random crop, flip);
* `images` -- image grids;
* `spec` -- `DataSpec`, what the models need to know about a data set.
"""

from ganjax.data.datasets import (DEFAULT_SYNTHETIC_SIZE, BatchIterator, ImageDataset,
                                  Transform, batch_indices, iterate_in_order, load_dataset,
                                  synthetic_images, to_float, to_uint8, training_batch)
from ganjax.data.spec import DataSpec

__all__ = ["DEFAULT_SYNTHETIC_SIZE", "BatchIterator", "DataSpec", "ImageDataset", "Transform",
           "batch_indices", "iterate_in_order", "load_dataset", "synthetic_images", "to_float",
           "to_uint8", "training_batch"]
