"""Benchmarks (issue 9): six workloads against numpy by hand, PyTensor and JAX; run with python -m benchmarks."""
