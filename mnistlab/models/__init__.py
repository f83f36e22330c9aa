"""The ``model`` group: LeNet-5 and the MLP as plain ``nn`` modules, and the per-layer parameter table."""

from mnistlab.models.lenet5 import LeNet5
from mnistlab.models.mlp import MLP
from mnistlab.models.parameters import count_parameters, parameter_table

__all__ = ["MLP", "LeNet5", "count_parameters", "parameter_table"]
