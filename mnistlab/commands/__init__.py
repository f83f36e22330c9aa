"""The commands: ``mnistlab`` (Hydra's command line over one run), ``mnistlab-report``, ``mnistlab-eval``,
``mnistlab-predict`` and ``mnistlab-export``, and the Hydra callbacks a launch runs."""
