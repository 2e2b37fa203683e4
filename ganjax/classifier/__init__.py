"""A discriminator trained alone as a classifier.

* `step` -- `ClassifierState`, the pure classifier step and evaluation step;
* `accuracy` -- class accuracy on a whole split (classifier runs, ACGAN runs);
* `trainer` -- the classifier task the runtime runs.
"""
