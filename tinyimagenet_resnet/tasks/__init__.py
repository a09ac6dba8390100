"""Tasks of the single entry point, selected by `task=<name>`."""
