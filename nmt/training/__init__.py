"""Training: the loop, one optimizer update, validation, the loss, the optimizer and its schedule,
data parallelism and what a run's checkpoints carry."""
