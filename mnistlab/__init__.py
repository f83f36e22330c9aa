"""mnistlab: a Hydra-configured PyTorch framework for MNIST research."""

import os

# Idle OpenMP threads spin for 10,000 iterations before they sleep, not libgomp's 300,000: alone a run is as
# fast, and two runs sharing cores run 2-9x faster (docs/performance.md). It takes effect only if torch is
# not loaded yet, and never over your own OMP_WAIT_POLICY or GOMP_SPINCOUNT.
if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys():
    os.environ["GOMP_SPINCOUNT"] = "10000"

__version__ = "0.1.0"
