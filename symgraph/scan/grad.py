"""Backpropagation through time for Scan (work in progress)."""
from __future__ import annotations


def scan_grad(op, inputs, outputs, output_grads):
    raise NotImplementedError
