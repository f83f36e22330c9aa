"""mnistlab: LeNet-5 and MLP on MNIST, composed with Hydra."""

__version__ = "0.1.0"
