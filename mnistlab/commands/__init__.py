"""The commands: ``mnistlab`` (Hydra's command line over one run), ``mnistlab-report``, ``mnistlab-eval``,
``mnistlab-predict``, ``mnistlab-export`` and ``mnistlab-reproduce``, and the Hydra callbacks a launch runs."""
