"""Metric names: the TensorBoard tags, also the keys of the per-epoch rows in metrics.json and checkpoints."""

TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/accuracy"
TRAIN_LOSS_STEP = "train/loss_step"
VAL_LOSS = "val/loss"
VAL_ACC = "val/accuracy"
VAL_TOP5 = "val/top5"
VAL_F1 = "val/f1_macro"
LR = "lr"
TRAIN_SIZE = "train/size"  # the train resolution (progressive resizing)
INITIAL_LOSS = "sanity/initial_loss"

# HParams metrics (one value per run)
HP_BEST_VAL_ACC = "hparam/best_val_accuracy"
HP_BEST_VAL_LOSS = "hparam/best_val_loss"
HP_EPOCHS_RUN = "hparam/epochs_run"

EPOCH_TAGS = (TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, VAL_TOP5, VAL_F1, LR, TRAIN_SIZE)


def split_tag(split: str, metric: str) -> str:
    """`split_tag("test", "accuracy")` -> `test/accuracy` (evaluation writes val/* and test/*)."""
    return f"{split}/{metric}"
