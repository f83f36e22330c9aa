"""``mnistlab-export <run dir>``: the trained model as ONNX and as a ``torch.export`` program, checked against PyTorch.

The exported model takes pixels: (N, 1, 28, 28) float32 in [0, 1], ink bright on black as in MNIST (what
``mnistlab-predict`` makes of an image), and returns (N, 10) logits. The dataset's normalization is part of it.
A JSON file beside it names the classes and the input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

from mnistlab import extras, runfiles
from mnistlab.data import load_dataset
from mnistlab.errors import UserError
from mnistlab.trained import TrainedRun, load_run

FORMATS = ("onnx", "pt2")
TOLERANCE = 1e-4  # largest difference in logits allowed between the export and the PyTorch model


class PixelModel(nn.Module):
    """The run's model behind its dataset's normalization: pixels in [0, 1] in, logits out."""

    def __init__(self, model: nn.Module, mean: float, std: float):
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels - self.mean) / self.std)


def _batch_dim() -> dict[str, dict[int, object]]:
    return {"pixels": {0: torch.export.Dim("batch", min=1, max=65536)}}


def export_pt2(model: PixelModel, example: torch.Tensor, path: Path) -> torch.Tensor:
    """Save a ``torch.export`` program; returns its logits on ``example``, from the file read back."""
    program = torch.export.export(model, (example,), dynamic_shapes=_batch_dim())
    torch.export.save(program, str(path))
    return torch.export.load(str(path)).module()(example)


def export_onnx(model: PixelModel, example: torch.Tensor, path: Path) -> torch.Tensor:
    """Save an ONNX model; returns ONNX Runtime's logits on ``example``."""
    extras.require("export", "mnistlab-export --format onnx")
    import onnxruntime

    program = torch.onnx.export(
        model, (example,), dynamo=True, input_names=["pixels"], output_names=["logits"], dynamic_shapes=_batch_dim(), verbose=False
    )
    program.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"pixels": example.numpy()})[0])


def export(trained: TrainedRun, out: Path, formats: tuple[str, ...] = FORMATS, check_images: int = 1000) -> dict[str, float]:
    """Write ``model.onnx`` / ``model.pt2`` and ``model.json`` into ``out``; returns, per format, the largest logit
    difference from the PyTorch model on ``check_images`` test images. Raises if it exceeds :data:`TOLERANCE`."""
    model = PixelModel(trained.model.cpu().eval(), trained.spec.mean, trained.spec.std).eval()
    arrays = load_dataset(trained.spec.name, trained.cfg.data.get("root"), download=False)
    example = arrays.test_images[:check_images].unsqueeze(1).float() / 255.0
    with torch.inference_mode():
        expected = model(example)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {out}: {err.strerror or err}") from err
    exporters = {"onnx": export_onnx, "pt2": export_pt2}
    differences = {}
    for name in formats:
        got = exporters[name](model, example, out / f"model.{name}").detach()
        differences[name] = float((got - expected).abs().max())
        agree = float((got.argmax(1) == expected.argmax(1)).float().mean())
        if differences[name] > TOLERANCE or agree < 1.0:
            raise UserError(
                f"model.{name} differs from the PyTorch model by {differences[name]:.2e} in its logits ({agree:.2%} same classes)"
            )
    meta = {
        "run_dir": str(trained.run_dir),
        "dataset": trained.spec.name,
        "classes": list(trained.spec.classes),
        "input": "pixels: float32 (N, 1, 28, 28) in [0, 1], ink bright on black, fitted and centred as in the dataset",
        "output": "logits: float32 (N, 10)",
        "epoch": trained.epoch,
        "max_logit_difference": differences,
        "checked_on_test_images": int(len(example)),
        "versions": runfiles.versions(),
    }
    runfiles.write_atomic(out / "model.json", json.dumps(meta, indent=2).encode())
    return differences


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mnistlab-export", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("run_dir", type=Path, help="a run directory holding checkpoint.pt and .hydra/config.yaml")
    parser.add_argument("--format", choices=[*FORMATS, "all"], default="all", help="onnx, pt2 (torch.export) or all (default)")
    parser.add_argument("--out", type=Path, help="where the files go (default: <run dir>/export)")
    args = parser.parse_args(argv)
    formats = FORMATS if args.format == "all" else (args.format,)
    out = args.out or args.run_dir / "export"
    try:
        differences = export(load_run(args.run_dir), out, formats)
    except UserError as err:
        print(f"mnistlab-export: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    for name, difference in differences.items():
        print(f"{out / f'model.{name}'}: logits within {difference:.1e} of PyTorch's on 1,000 test images, the same classes")
    print(f"{out / 'model.json'}: classes and input format")
