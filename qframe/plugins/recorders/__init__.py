"""Built-in recorders: called with every finished run (``recorders=[csv_log]``)."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl


def _csv_log(**params):
    from qframe.plugins.recorders.csv_log import CsvLogRecorder

    return CsvLogRecorder(**params)


@hookimpl
def register_recorders(register) -> None:
    register(
        "csv_log",
        _csv_log,
        "Append one row per run (time, run id, dataset, model, strategy, objective, every metric) to a CSV file",
    )
