"""Training: the engine and its callbacks, checkpoints, optimizers, metrics, device/precision/RNG runtime."""
