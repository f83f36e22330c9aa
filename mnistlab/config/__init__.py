"""The settings of a run: typed schemas with their ranges, the checks of every group, and the run's identity;
:func:`check` turns a composed config into the one :class:`RunConfig` a run reads, which nothing edits."""

from mnistlab.config.checks import check
from mnistlab.config.hydra_setup import register
from mnistlab.config.run_config import RunConfig

__all__ = ["RunConfig", "check", "register"]
