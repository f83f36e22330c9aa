"""Expected calibration error (Guo et al. 2017) as a metric: how far confidence is from accuracy."""

from __future__ import annotations

import torch

from mnistlab.training import Metric


class ExpectedCalibrationError(Metric):
    """Predictions binned by confidence (the top softmax probability) into ``bins`` equal bins: the mean over images
    of |accuracy - confidence| of their bin. 0 is perfectly calibrated; lower is better."""

    name, label, higher_is_better, digits = "ece", "ECE", False, 4

    def __init__(self, bins: int = 15):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        self.bins = bins

    def reset(self) -> None:
        self.count = self.correct = self.confidence = 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        confidence, predicted = logits.softmax(1).max(1)
        index = (confidence * self.bins).long().clamp(max=self.bins - 1)
        self.count = self.count + torch.bincount(index, minlength=self.bins)
        self.correct = self.correct + torch.bincount(index, weights=(predicted == labels).float(), minlength=self.bins)
        self.confidence = self.confidence + torch.bincount(index, weights=confidence, minlength=self.bins)

    def compute(self) -> float:
        return float((self.correct - self.confidence).abs().sum() / self.count.sum())
