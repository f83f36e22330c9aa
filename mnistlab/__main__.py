"""``python -m mnistlab``: the same entry point as the ``mnistlab`` command."""

from mnistlab.commands.main import cli

cli()
