"""Tiny ImageNet experiments with a residual network (Dropout2d inside the blocks), configured with Hydra."""

__version__ = "0.1.0"
