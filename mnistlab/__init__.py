"""mnistlab: a Hydra-configured PyTorch framework for MNIST-like datasets.

From Python: ``from mnistlab import api`` (compose a config, train, load a trained run). Importing mnistlab
changes nothing global: no environment variable, no matplotlib backend, no logging handler.
"""

__version__ = "0.1.0"
