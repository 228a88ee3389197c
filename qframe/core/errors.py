"""User-facing errors.

Anything a user can fix (bad config, bad data, unknown component) raises a
:class:`QFrameError`; the CLI prints its message on one line and exits with
status 2 instead of showing a traceback (``QFRAME_DEBUG=1`` shows it).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class QFrameError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class ConfigError(QFrameError):
    """The composed configuration is invalid (unknown key, component, bad value)."""


class DataError(QFrameError):
    """Input data is missing, unreadable or invalid."""


class DegenerateResult(QFrameError):
    """A run whose result means nothing (e.g. a constant prediction); ``tags`` go on its MLflow run."""

    def __init__(self, message: str, tags: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.tags = dict(tags or {})


def reject_unknown_params(owner: str, key: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """ConfigError for the first of ``given`` not in ``valid``: ``unknown parameter model.x of model 'y'; did you
    mean model.z?``"""
    valid = [v for v in valid if v != "name"]
    unknown = [g for g in given if g not in valid]
    if not unknown:
        return
    bad = unknown[0]
    close = difflib.get_close_matches(bad, valid, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(f'{key}.{c}' for c in close)}?" if close else ""
    also = f" (and {len(unknown) - 1} more: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
    listing = f"{' ' if close else '; '}valid parameters: {', '.join(sorted(valid))}" if len(valid) <= 40 else ""
    raise ConfigError(f"unknown parameter {key}.{bad} of {owner}{also}{hint}{listing}")
