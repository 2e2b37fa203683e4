"""Builds the optional oneDNN convolution extension (``ganjax._onednn_conv``).

The package is pure Python otherwise. The extension links oneDNN from the ``onednn-cpu-gomp``
wheel and compiles against the vendored oneDNN and XLA FFI headers (``csrc/third_party``).
It is optional: without a C++ compiler or that wheel (or off Linux x86-64) the build goes on
without it, and ganjax computes every convolution with XLA's own kernels.
"""

from __future__ import annotations

import pathlib
import sys
from importlib import metadata

from setuptools import Extension, setup


def _locate(dist: str, suffix: str) -> pathlib.Path | None:
  """The installed file of ``dist`` whose path ends with ``suffix``, or None."""
  try:
    files = metadata.files(dist) or []
  except metadata.PackageNotFoundError:
    return None
  for f in files:
    path = pathlib.Path(f.locate()).resolve()
    if str(f).endswith(suffix) and path.exists():
      return path
  return None


def _extensions() -> list[Extension]:
  library = _locate("onednn-cpu-gomp", "libdnnl.so.3")
  if library is None or sys.platform != "linux":
    print("ganjax: onednn-cpu-gomp not found; building without the oneDNN convolution "
          "extension", file=sys.stderr)
    return []
  return [Extension(
      "ganjax._onednn_conv",
      sources=["csrc/onednn_conv.cc", "csrc/channel_sums.cc"],
      depends=["csrc/ffi_job.h"],
      include_dirs=["csrc/third_party"],
      library_dirs=[str(library.parent)],
      libraries=[":libdnnl.so.3"],
      extra_compile_args=["-std=c++17", "-O2", "-fopenmp", "-fvisibility=hidden",
                          "-Wno-attributes", "-Wno-return-type"],
      extra_link_args=["-fopenmp"],
      language="c++",
      optional=True,
  )]


setup(ext_modules=_extensions())
