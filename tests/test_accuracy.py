"""Full-length real-data runs against the documented accuracy figures (slow: `pytest -m slow`)."""

import pytest

from mnistlab.runs import task

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "overrides,floor",
    [
        ((), 99.2),  # LeNet-5, default training
        (("model=mlp",), 98.2),
        (("experiment=best",), 99.4),  # regularization=all, 30 epochs
        (("model=mlp", "experiment=best"), 98.6),
        (("experiment=speedrun",), 99.0),
    ],
)
def test_documented_accuracy(make_cfg, tmp_path, overrides, floor):
    summary = task.run(make_cfg(*overrides, "seed=0", "run.plots=false", "run.checkpoint=false"), tmp_path)
    assert summary["status"] == "completed"
    assert summary["final_test_acc"] >= floor
