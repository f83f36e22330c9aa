"""``mnistlab-export <run dir>``: the trained model as ONNX and as a ``torch.export`` program, checked against PyTorch.

The exported model takes pixels: (N, C, H, W) float32 in [0, 1], as the dataset's images are ((N, 1, 28, 28),
ink bright on black, for MNIST: what ``mnistlab-predict`` makes of an image), and returns (N, classes) logits.
The dataset's normalization is part of it.
A JSON file beside it names the classes and the input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

from mnistlab import extras
from mnistlab.errors import UserError
from mnistlab.runs import files
from mnistlab.runs.trained import TrainedRun, load_run

FORMATS = ("onnx", "pt2")
TOLERANCE = 1e-4  # largest difference in logits allowed between the export and the PyTorch model


class PixelModel(nn.Module):
    """The run's model behind its dataset's normalization: pixels in [0, 1] in, logits out."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

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
    dataset = trained.dataset
    model = PixelModel(trained.model.cpu().eval(), dataset.mean, dataset.std).eval()
    if hasattr(dataset, "download"):
        dataset.download = False
    example = dataset.load().test_images[:check_images].float() / 255.0
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
        "dataset": dataset.name,
        "classes": list(dataset.classes),
        "input": f"pixels: float32 (N, {', '.join(map(str, example.shape[1:]))}) in [0, 1], as the dataset's images (mnistlab-predict makes them)",
        "output": f"logits: float32 (N, {len(dataset.classes)})",
        "epoch": trained.epoch,
        "max_logit_difference": differences,
        "checked_on_test_images": int(len(example)),
        "versions": files.versions(),
    }
    files.write_atomic(out / "model.json", json.dumps(meta, indent=2).encode())
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
        print(f"{out / f'model.{name}'}: logits within {difference:.1e} of PyTorch's on the test images checked, the same classes")
    print(f"{out / 'model.json'}: classes and input format")
