"""qframe: a config-driven, plugin-extensible framework for quantitative research."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def runs(tracking_uri: str | None = None, workdir: str | None = None) -> Any:
    """The store of recorded runs (:class:`qframe.experiments.store.RunStore`): ``.search(...)`` a DataFrame,
    ``.get(RUN)`` one run. Default: the store a ``qframe`` run started here records to."""
    from qframe.experiments.store import RunStore  # MLflow is imported on use, never by `import qframe`

    return RunStore.open(tracking_uri, workdir)


def __getattr__(name: str) -> Any:
    if name == "record":
        from qframe.experiments.record import record

        return record
    raise AttributeError(f"module 'qframe' has no attribute {name!r}")
