"""``python -m mnistlab``: the same entry point as the ``mnistlab`` command."""

from mnistlab.cli import cli

cli()
