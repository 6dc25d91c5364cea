"""lanco's benchmark on the real kernel: ``python -m bench`` (see bench/README.md)."""
