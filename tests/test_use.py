"""Using what was trained: the Python API, mnistlab-eval, mnistlab-predict on your own images, and the exports."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmarks.rendered_digits import render_test_digits
from conftest import ROOT, run_cli
from mnistlab import api
from mnistlab.commands.predict import classify
from mnistlab.data import Idx
from mnistlab.data.idx import load_mnist
from mnistlab.data.pictures import preprocess, to_mnist
from mnistlab.errors import ConfigError, DataError

MNIST_DATASET = Idx()  # its normalization, as a run of it has


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """LeNet-5 trained through the Python API on 150 batches of real MNIST (about 97% on the test set)."""
    cfg = api.compose("trainer.epochs=1", "trainer.limit_batches=150", "trainer.progress=false")
    return api.train(cfg, tmp_path_factory.mktemp("use") / "lenet5")


def test_api_returns_the_trained_model_summary_and_metrics(trained, mnist):
    assert trained.summary["status"] == "completed" and trained.summary["model"] == "lenet5"
    assert list(trained.metrics["epoch"]) == [1] and trained.summary["final_test_acc"] > 95
    with torch.inference_mode():
        logits = trained.model.cpu()(MNIST_DATASET.normalize(mnist.test_images))
    accuracy = 100.0 * (logits.argmax(1) == mnist.test_labels).float().mean().item()
    assert accuracy == pytest.approx(trained.summary["final_test_acc"], abs=0.01)  # the very model that was scored

    loaded = api.load(trained.run_dir)
    assert loaded.epoch == 1 and loaded.dataset.name == "mnist" and loaded.cfg.model._target_ == "mnistlab.models.LeNet5"
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor.cpu(), loaded.model.state_dict()[name])


def test_api_changes_nothing_global_and_logs_to_the_callers_handlers(tmp_path, caplog):
    import matplotlib
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    code = "import os, sys, logging; env = dict(os.environ); import mnistlab, mnistlab.api; print(env == dict(os.environ), logging.getLogger().handlers, 'matplotlib.pyplot' in sys.modules)"
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout.split()
    assert out == ["True", "[]", "False"], out  # no environment variable, no logging handler, no pyplot

    backend = matplotlib.rcParams._get_backend_or_none()
    caplog.set_level(logging.INFO, logger="mnistlab")
    cfg = api.compose("model=mlp", "trainer.epochs=1", "trainer.limit_batches=5", "trainer.progress=false")
    result = api.train(cfg, tmp_path / "run")
    assert result.summary["model"] == "mlp" and (tmp_path / "run" / "mistakes.png").is_file()
    assert any("mlp: status=completed" in r.getMessage() for r in caplog.records)
    assert matplotlib.rcParams._get_backend_or_none() == backend
    assert not HydraConfig.initialized() and not GlobalHydra.instance().is_initialized()


def test_api_compose_takes_a_config_dir_of_your_own_options(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tiny.yaml").write_text("_target_: mnistlab.models.MLP\nhidden: [16]\n")
    cfg = api.compose("model=tiny", config_dir=tmp_path)
    assert cfg.model.hidden == [16] and cfg.hydra.runtime.choices.model == "tiny"
    with pytest.raises(ConfigError, match="regularization.dropout=0.2 would have no effect"):
        api.train(api.compose("model=tiny", "regularization=dropout", config_dir=tmp_path), tmp_path / "run")


def test_eval_scores_the_checkpoint_as_the_run_did(trained):
    proc = run_cli(str(trained.run_dir), script="mnistlab-eval")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = trained.run_dir / "eval"
    result = json.loads((out / "eval.json").read_text())
    assert result["test_acc"] == pytest.approx(trained.summary["final_test_acc"], abs=1e-6) and result["test_images"] == 10_000
    confusion = pd.read_csv(out / "confusion.csv", index_col=0)
    assert confusion.to_numpy().sum() == 10_000 and np.trace(confusion.to_numpy()) == 10_000 - result["mistakes"]
    mistakes = pd.read_csv(out / "mistakes.csv")
    assert len(mistakes) == result["mistakes"] and (mistakes["true"] != mistakes["predicted"]).all()
    assert mistakes["confidence"].is_monotonic_decreasing
    assert (out / "confusion.png").stat().st_size > 0 and (out / "mistakes.png").stat().st_size > 0
    assert f"accuracy {result['test_acc']:.2f}%" in proc.stdout


def test_eval_of_a_directory_without_a_run_is_one_line(tmp_path):
    proc = run_cli(str(tmp_path), script="mnistlab-eval")
    assert proc.returncode == 2 and "is not a mnistlab run directory" in proc.stderr and "Traceback" not in proc.stderr


def test_predict_reads_digits_rendered_from_mnist_test_images(trained, mnist, tmp_path):
    """200 test digits saved as PNGs of other sizes, half of them dark on light: predicted about as well as the originals."""
    paths, picks = render_test_digits(tmp_path, 200, images=mnist.test_images.numpy())
    model = api.load(trained.run_dir)
    predicted, _ = classify(model, preprocess(paths, model.dataset))
    original, _ = classify(model, mnist.test_images[picks])
    labels = mnist.test_labels[picks]
    right, right_original = int((predicted == labels).sum()), int((original == labels).sum())
    print(f"mnistlab-predict: {right}/200 rendered digits right; {right_original}/200 of the same test images as stored")
    assert right >= 185 and right >= right_original - 6  # the renders also stretch each digit by up to 20%

    proc = run_cli(str(trained.run_dir), *map(str, paths[:5]), str(tmp_path / "missing.png"), script="mnistlab-predict")
    assert proc.returncode == 2 and "missing.png: cannot be read as an image" in proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 6 and [line.split()[1] for line in lines[1:]] == [str(d) for d in predicted[:5].tolist()]


def test_preprocessing_matches_mnist_for_a_stored_digit():
    """A stored MNIST digit, fitted and centred again, stays close to itself, whatever its polarity or size."""
    digit = load_mnist(ROOT / "data", download=False).test_images[0].numpy()
    again = to_mnist(digit / 255.0)
    inverted_and_large = to_mnist(1.0 - np.asarray(Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC)) / 255.0)
    for image in (again, inverted_and_large):
        ys, xs = np.nonzero(image > 40)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 <= 21  # fitted into the 20x20 box
        assert np.corrcoef(image.ravel(), digit.ravel())[0, 1] > 0.9
    with pytest.raises(DataError, match="no digit found"):
        to_mnist(np.full((50, 50), 0.8))


@pytest.mark.e2e
def test_exports_give_the_pytorch_models_logits(trained, mnist, tmp_path):
    pytest.importorskip("onnxruntime")
    proc = run_cli(str(trained.run_dir), "--out", str(tmp_path), script="mnistlab-export")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["classes"] == list("0123456789") and all(d <= 1e-4 for d in meta["max_logit_difference"].values())

    import onnxruntime

    pixels = mnist.test_images[-64:].unsqueeze(1).float() / 255.0  # images the export check did not use, another batch size
    with torch.inference_mode():
        expected = trained.model.cpu()(MNIST_DATASET.normalize(mnist.test_images[-64:])).numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["logits"], {"pixels": pixels.numpy()})[0], expected, atol=1e-4)
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    np.testing.assert_allclose(program(pixels).detach().numpy(), expected, atol=1e-5)
