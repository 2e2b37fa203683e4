"""Benchmarks and studies of ganjax (not part of the library, not installed with it).

Every script runs from the checkout root as ``python -m experiments.<name> [options]``
(``--help`` lists the options); the PyTorch references they compare against are in ``tests/``
(`tests.torch_reference`, `tests.random_inception`). The findings are in ``docs/*_NOTES.md``.

* `bench_train_step` -- ganjax's training iteration (the step `ganjax.gan.build.build_gan`
  builds, as the trainer jits it) against the same iteration in eager PyTorch, in one process
  and alternating timing windows: images/s and ``ratio_vs_torch`` (PyTorch time / JAX time);
  optionally a second JAX step with other convolution forms or `variants`.
* `benchmark_train` -- the front end of `bench_train_step` the README quotes: the same
  measurement plus the machine's float32 matmul peak, GFLOP per iteration and a table.
* `profile_step` -- where the CPU time of the step goes: thread time per XLA thunk, per
  YNNPACK convolution (GFLOP/s) and per oneDNN call, from a `jax.profiler` trace.
* `variants` -- research-only patches of the step's models, selected by name in
  `bench_train_step` (``--variant`` / ``--variant_b``).
* `layer_bench` -- per-layer forward + backward time of the DCGAN's convolutions in each form
  of `layer_forms` against PyTorch channels_last.
* `layer_forms` -- alternative forms of the 4x4 stride-2 transposed and strided convolutions
  (the forms `layer_bench` times).
* `bench_population` -- a population step (K GANs in one vmapped jit) against K sequential
  single-GAN steps: steps/s, GAN updates/s and the speedup.
* `bench_inception` -- FID feature extraction speed, ganjax's Inception extractor against
  pytorch-fid, same images and weights.
* `fid_parity` -- FID statistics of real CIFAR-10 images, ganjax against pytorch-fid with the
  same random weights: relative differences of mu, sigma and FID.
* `zoo_throughput` -- steps/s and images/s of training runs, read from their console logs.
* `fault_injection` -- random kill -9 / SIGTERM in tiny runs: steps lost, bit-identical ends.
"""
