"""The schema of each config group and task node, one module per group (config/schema.py assembles the root)."""
