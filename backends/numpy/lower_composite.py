"""(being written) numpy lowering of fused Composite nodes."""
