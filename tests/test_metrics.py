import numpy as np
import torch
from sklearn.metrics import f1_score, top_k_accuracy_score

from tinyimagenet_resnet.training.metrics import ClassificationMeter


def test_meter_matches_sklearn_over_several_batches():
    rng = np.random.default_rng(0)
    n_classes = 12
    meter = ClassificationMeter(n_classes, torch.device("cpu"))
    all_logits, all_targets = [], []
    for _ in range(4):
        logits = torch.tensor(rng.normal(size=(25, n_classes)), dtype=torch.float32)
        targets = torch.tensor(rng.integers(0, n_classes - 2, 25))  # two classes never appear as targets
        meter.update(logits, targets, torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
        all_logits.append(logits)
        all_targets.append(targets)
    logits, targets = torch.cat(all_logits), torch.cat(all_targets)
    m = meter.compute()
    preds = logits.argmax(1).numpy()
    assert m.accuracy == np.mean(preds == targets.numpy()) and m.n == 100
    assert np.isclose(m.f1_macro, f1_score(targets.numpy(), preds, average="macro"))
    assert np.isclose(m.top5, top_k_accuracy_score(targets.numpy(), logits.numpy(), k=5, labels=np.arange(n_classes)))
    assert np.isclose(m.loss, torch.nn.functional.cross_entropy(logits, targets).item(), atol=1e-6)
    assert meter.confusion.sum() == 100
