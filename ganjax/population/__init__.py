"""Populations: K GANs of one architecture trained by one compiled step (`jax.vmap`).

* `build` -- member configs, the stacked state initializer and the vmapped step;
* `trainer` -- the population task the runtime runs, with per-member outputs.
"""
