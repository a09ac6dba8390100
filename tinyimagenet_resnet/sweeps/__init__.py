"""Sweeps: the resumable Optuna sweeper, trial-aware pruning in jobs, and sweep summaries."""
