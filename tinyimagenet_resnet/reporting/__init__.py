"""Reporting: the course report, figures, and metric overlays of runs and sweeps."""
