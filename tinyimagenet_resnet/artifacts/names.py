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
INITIAL_LOSS = "train/initial_loss"  # one point (the first step's loss); sanity/initial_loss in 0.1.0 runs

# HParams metrics (one value per run), in the val/ group so that TensorBoard's Time Series, which sorts groups by
# name, opens on the training curves rather than on single-point charts (0.1.0 runs wrote hparam/*)
HP_BEST_VAL_ACC = "val/best_accuracy"
HP_BEST_VAL_LOSS = "val/best_loss"
HP_EPOCHS_RUN = "val/epochs_run"
HP_METRICS = (HP_BEST_VAL_ACC, HP_BEST_VAL_LOSS, HP_EPOCHS_RUN)

EPOCH_TAGS = (TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, VAL_TOP5, VAL_F1, LR, TRAIN_SIZE)


def split_tag(split: str, metric: str) -> str:
    """`split_tag("test", "accuracy")` -> `test/accuracy` (evaluation writes val/* and test/*)."""
    return f"{split}/{metric}"
