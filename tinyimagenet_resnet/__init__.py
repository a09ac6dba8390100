"""Tiny ImageNet experiments with a residual network (Dropout2d inside the blocks), configured with Hydra."""

import time

__version__ = "0.2.0"

STARTED_AT = time.time()  # when this process started (a time budget counts the whole command, imports included)
