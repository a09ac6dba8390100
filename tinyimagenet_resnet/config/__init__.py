"""Configuration: the schema (dataclasses in Hydra's ConfigStore), validation, composition, run names."""
