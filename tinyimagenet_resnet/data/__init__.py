"""Data: loading the raw dataset, carving splits, transforms and loaders."""
