"""Convolutions: the forms the models use and the backends that compute them.

* `conv` -- `UpConv` / `DownConv`, the `flax.linen.Conv` drop-in, the backends (``"auto"``:
  oneDNN on the CPU when built; ``"xla"``: XLA's everywhere) and `backend_for` a mesh;
* `onednn` -- the optional XLA FFI extension running convolutions with oneDNN on the CPU.
"""
