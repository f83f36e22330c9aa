"""``mnistlab-predict <run dir> image ...``: classify your own images with a trained run, preprocessed as its
dataset's were (:mod:`mnistlab.data.pictures`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

from mnistlab.data.pictures import preprocess
from mnistlab.errors import DataError, UserError
from mnistlab.runs.trained import TrainedRun, load_run


@torch.inference_mode()
def classify(trained: TrainedRun, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities' top class and its probability for uint8 images (N, C, H, W)."""
    device = next(trained.model.parameters()).device
    probabilities = trained.model(trained.dataset.normalize(images, device)).float().softmax(1).cpu()
    confidence, predicted = probabilities.max(1)
    return predicted, confidence


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mnistlab-predict", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("run_dir", type=Path, help="a run directory holding checkpoint.pt and .hydra/config.yaml")
    parser.add_argument("images", type=Path, nargs="+", help="image files (PNG, JPEG, ...) of any size")
    parser.add_argument("--save-preprocessed", type=Path, metavar="DIR", help="also write each image as the model sees it (PNG)")
    args = parser.parse_args(argv)
    try:
        trained = load_run(args.run_dir)
    except UserError as err:
        print(f"mnistlab-predict: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    readable, failed = [], 0
    for path in args.images:
        try:
            readable.append((path, preprocess([path], trained.dataset)[0]))
        except DataError as err:
            print(f"mnistlab-predict: {err}", file=sys.stderr)
            failed += 1
    if readable:
        predicted, confidence = classify(trained, torch.stack([image for _, image in readable]))
        width = max(len(str(path)) for path, _ in readable)
        print(f"{'image':<{width}}  prediction  confidence")
        for (path, image), label, p in zip(readable, predicted.tolist(), confidence.tolist(), strict=True):
            print(f"{str(path):<{width}}  {trained.dataset.classes[label]:<10}  {p:10.4f}")
            if args.save_preprocessed:
                args.save_preprocessed.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image[0].numpy() if len(image) == 1 else image.permute(1, 2, 0).numpy()).save(
                    args.save_preprocessed / f"{path.stem}.png"
                )
    if failed:
        sys.exit(DataError.exit_code)
