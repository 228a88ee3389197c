"""User-facing errors.

Anything a user can fix (bad config, bad data, unknown component) raises a
:class:`QFrameError`; the CLI prints its message on one line and exits with
status 2 instead of showing a traceback (``QFRAME_DEBUG=1`` shows it).
"""

from __future__ import annotations


class QFrameError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class ConfigError(QFrameError):
    """The composed configuration is invalid (unknown key, component, bad value)."""


class DataError(QFrameError):
    """Input data is missing, unreadable or invalid."""
