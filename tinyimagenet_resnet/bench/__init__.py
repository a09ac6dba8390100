"""Benchmarks (not on the runtime path): `python -m tinyimagenet_resnet.bench [throughput|sweep] ...`."""
