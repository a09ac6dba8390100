"""Classification metrics accumulated batch by batch: loss, top-1, top-5, macro-F1, confusion matrix."""

from __future__ import annotations

import torch

from ..artifacts.records import SplitMetrics


class ClassificationMeter:
    """Accumulates on the device (no per-batch host sync); `compute()` returns plain floats."""

    def __init__(self, num_classes: int, device: torch.device):
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.top5_hits = torch.zeros((), dtype=torch.long, device=device)
        self.count = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor) -> None:
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        preds = top[:, 0]
        self.top5_hits += (top == targets[:, None]).any(dim=1).sum()
        self.loss_sum += loss_sum.double()
        idx = targets * self.num_classes + preds
        self.confusion += torch.bincount(idx, minlength=self.num_classes**2).view(self.num_classes, self.num_classes)
        self.count += targets.numel()

    def compute(self) -> SplitMetrics:
        cm = self.confusion.double()
        tp = cm.diag()
        support = cm.sum(1)
        predicted = cm.sum(0)
        # sklearn's f1_score(average="macro"): mean over the labels present in targets or predictions.
        present = (support + predicted) > 0
        f1 = torch.where(present, 2 * tp / (support + predicted).clamp_min(1), torch.zeros_like(tp))
        n = max(self.count, 1)
        return SplitMetrics(
            loss=float(self.loss_sum) / n,
            accuracy=float(tp.sum()) / n,
            top5=float(self.top5_hits) / n,
            f1_macro=float(f1[present].mean()) if bool(present.any()) else 0.0,
            n=self.count,
        )

    def per_class_accuracy(self) -> torch.Tensor:
        cm = self.confusion.double()
        return cm.diag() / cm.sum(1).clamp_min(1)
