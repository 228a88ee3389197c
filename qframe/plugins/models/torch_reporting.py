"""Who hears of each finished epoch of a torch model's training: MLflow (step metrics) and the progress display.

An epoch's record is ``{"epoch": n, "train_loss": ..., "lr": ..., "valid_loss": ..., "valid_ic": ...}`` (the
valid keys only with a valid segment), as the model's ``history`` keeps it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def log_epoch_metrics(record: dict[str, float]) -> None:
    """Logs an epoch's record as step metrics ``epoch.<name>`` (step: the epoch) in the active MLflow run, if any.

    Non-finite values are left out (MLflow refuses NaN).
    """
    # MLflow is only consulted when the process already imported it (the workflow does): a bare fit stays light
    if "mlflow" not in sys.modules:
        return
    import mlflow

    if mlflow.active_run() is None:
        return
    metrics = {f"epoch.{k}": float(v) for k, v in record.items() if k != "epoch"}
    mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)}, step=int(record["epoch"]))


class EpochProgress:
    """The epochs of one training on a rich progress bar, or told to the workflow's progress, which then replaces it.

    Args:
        kind: the model's name, shown before the bar. max_epochs: the bar's length. start: epochs already done
            (a resumed training). show_bar: the model's ``progress`` setting. reporter: the workflow's
            :class:`qframe.core.progress.Progress`, or None.
    """

    def __init__(self, kind: str, max_epochs: int, start: int, show_bar: bool, reporter: Any = None) -> None:
        self.kind, self.max_epochs, self.start, self.reporter = kind, max_epochs, start, reporter
        self.show_bar = show_bar and reporter is None

    def __enter__(self) -> EpochProgress:
        columns = (TextColumn(f"{self.kind} epochs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[status]}"))  # fmt: skip
        self._bar = Progress(*columns, disable=not self.show_bar, transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("train", total=self.max_epochs, completed=self.start, status="")
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)

    def update(self, record: dict[str, float]) -> None:
        """An epoch is done: its losses and IC (not its learning rate) on the bar or in the workflow's progress."""
        epoch = int(record["epoch"])
        status = "  ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "lr"))
        self._bar.update(self._task, completed=epoch, status=status)
        if self.reporter is not None:
            self.reporter.update(f"epoch {epoch}/{self.max_epochs}  {status}", epoch, self.max_epochs)
