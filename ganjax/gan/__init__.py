"""One GAN: its state pytree, its pure training step, and what the step is made of.

* `state` -- `GANState` / `PlayerState` and `create_state`;
* `steps` -- `make_train_step` (n_critic critic updates unrolled, the generator update, EMA)
  and `make_sample_fn`;
* `losses` -- the objectives (non-saturating, minimax, Wasserstein, hinge, least squares);
* `regularizers` -- gradient penalty, R1, weight clipping;
* `optim` -- optimizers and learning-rate schedules from config sections (optax);
* `build` -- from a config to the pure pieces (`build_gan`);
* `trainer` -- the GAN task the runtime runs.
"""
