"""Looking inside trained discriminators: gradients, adversarial steps, activation maximization."""
