"""mnistlab: a Hydra-configured PyTorch framework for MNIST-like datasets; docs/layout.md draws its layers.
From Python: ``from mnistlab import api``. Importing mnistlab changes nothing global."""

__version__ = "0.2.0"
