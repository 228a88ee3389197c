"""Rolling (walk-forward) windows: the task list of a rolling study, made before any work starts.

A :class:`Window` is one task: a train span, a valid span (early stopping) and the test slice it predicts. The
test slices tile the out-of-sample span (by default the single split's test segment, so a rolling study and a
single run are judged on the same days) in steps of ``trainer.step`` trading days; each window's train and valid
spans end ``gap`` trading days before its test slice starts. ``gap`` defaults to the label horizon: the label of
day ``s`` is ``close(s + h + 1) / close(s + 1) - 1`` (conf/handler/*.yaml), known at the close of ``s + h + 1``,
so the last valid day ``s = t0 - h - 1`` has its label known by the first test day ``t0``, and no label of a fit
reaches into the test slice.

``window=sliding`` keeps ``train_days`` of training; ``expanding`` keeps the first window's train start and grows.
A window whose train span would start before the calendar is cut at the first day (it must keep
:data:`MIN_TRAIN_DAYS`); the last test slice ends at the out-of-sample span's end (it may be shorter than ``step``).

Generators are pluggable (``register_task_generators``, :class:`TaskGenerator`): the built-in ``rolling`` is
:func:`rolling_windows`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from qframe.core.errors import ConfigError

#: trading days a window's train span must keep at the least (its valid span too)
MIN_TRAIN_DAYS = 10
WINDOW_MODES = ("sliding", "expanding")
FAILURE_MODES = ("fail", "skip")


@dataclass(frozen=True)
class Window:
    """One task of a rolling study: calendar positions ``[lo, hi)`` of its train, valid and test spans."""

    index: int
    train: tuple[int, int]
    valid: tuple[int, int]
    test: tuple[int, int]

    def dates(self, calendar: pd.DatetimeIndex) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        """``{span: (first day, last day)}`` of the window on ``calendar``."""
        return {s: (calendar[lo], calendar[hi - 1]) for s, (lo, hi) in self.spans().items()}

    def spans(self) -> dict[str, tuple[int, int]]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def describe(self, calendar: pd.DatetimeIndex) -> dict[str, str]:
        """The spans as ``{"train": "2019-01-02..2020-12-31", ...}`` (what the window's MLflow run records)."""
        return {s: f"{lo.date()}..{hi.date()}" for s, (lo, hi) in self.dates(calendar).items()}


@runtime_checkable
class TaskGenerator(Protocol):
    """Makes a study's task list: called once, before any work, with the calendar, the out-of-sample span's
    positions ``[lo, hi)``, the label horizon and the ``trainer`` section's other keys; returns the windows, in
    order, their test slices disjoint and inside the span."""

    def __call__(
        self, calendar: pd.DatetimeIndex, oos: tuple[int, int], horizon: int, /, **settings: Any
    ) -> list[Window]: ...


def _days(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"trainer.{key} must be a whole number of trading days >= {minimum}, got {value!r}")
    return int(value)


def rolling_windows(
    calendar: pd.DatetimeIndex,
    oos: tuple[int, int],
    horizon: int,
    /,
    step: int = 60,
    window: str = "sliding",
    train_days: int = 1000,
    valid_days: int = 250,
    gap: int | None = None,
) -> list[Window]:
    """Walk-forward windows over ``oos`` (calendar positions ``[lo, hi)``): see the module docstring."""
    step = _days(step, "step", 1)
    train_days = _days(train_days, "train_days", MIN_TRAIN_DAYS)
    valid_days = _days(valid_days, "valid_days", MIN_TRAIN_DAYS)
    gap = horizon if gap is None else _days(gap, "gap", 0)
    if gap < horizon:
        raise ConfigError(
            f"trainer.gap={gap} is shorter than the label horizon ({horizon} days): the last labels of each fit "
            f"would reach into its test slice; set trainer.gap>={horizon} or null (the horizon)"
        )
    if window not in WINDOW_MODES:
        raise ConfigError(f"trainer.window={window!r}; valid options: {', '.join(WINDOW_MODES)}")
    lo, hi = oos
    if hi <= lo:
        raise ConfigError("the out-of-sample span holds no trading day: set segments.test=[start,end] within the data")
    windows: list[Window] = []
    first_train = None
    for index, t0 in enumerate(range(lo, hi, step)):
        valid_hi = t0 - gap
        valid_lo = valid_hi - valid_days
        train_hi = valid_lo
        sliding_lo = max(0, train_hi - train_days)
        first_train = sliding_lo if first_train is None else first_train
        train_lo = first_train if window == "expanding" else sliding_lo
        if train_hi - train_lo < MIN_TRAIN_DAYS:
            need = gap + valid_days + MIN_TRAIN_DAYS
            raise ConfigError(
                f"the rolling window starting {calendar[t0].date()} has {max(train_hi - train_lo, 0)} train day(s) "
                f"before it (it needs valid_days {valid_days} + gap {gap} + at least {MIN_TRAIN_DAYS} train days = "
                f"{need} days of history, the data starts {calendar[0].date()}): lower trainer.train_days / "
                "trainer.valid_days, or start the test later (segments.test=[start,end])"
            )
        windows.append(Window(index, (train_lo, train_hi), (valid_lo, valid_hi), (t0, min(t0 + step, hi))))
    return windows


def check_windows(windows: list[Window], oos: tuple[int, int], horizon: int, owner: str) -> list[Window]:
    """Refuse a task list (a plugin generator's too) whose test slices overlap, leave the span, or whose fit spans
    do not end ``horizon`` days before the test: each test day must be predicted once, out of sample."""
    if not windows:
        raise ConfigError(f"{owner} made no window for the out-of-sample span; widen segments.test or lower step")
    seen = -1
    for w in windows:
        (a, b), (c, d), (t0, t1) = w.train, w.valid, w.test
        if not (oos[0] <= t0 < t1 <= oos[1]) or t0 < seen:
            raise ConfigError(f"{owner}: window {w.index}'s test slice {w.test} overlaps another or leaves the span")
        if max(b, d) + horizon > t0 or a >= b or c >= d:
            raise ConfigError(
                f"{owner}: window {w.index}'s train/valid spans end less than the label horizon ({horizon} days) "
                "before its test slice: the fit would see test labels"
            )
        seen = t1
    return windows


def trainer_settings(trainer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``trainer`` section's generator settings: every key but those the runner itself reads."""
    own = {"name", "generator", "slots", "on_window_failure", "executor"}
    return {k: v for k, v in (trainer or {}).items() if k not in own}
