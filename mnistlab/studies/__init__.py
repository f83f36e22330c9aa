"""Optuna studies: the search space, the storage, the workers that run trials here or on SLURM, and the callback
through which a trial reports to its study. Only a study's launch imports this package."""
