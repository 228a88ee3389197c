"""Built-in dataset loaders: a seeded synthetic market, user tables, and Qlib's binary data directory."""

from __future__ import annotations

import importlib
from typing import Any

from qframe.core.hookspecs import hookimpl
from qframe.core.lazy import lazy

#: class name -> its module; imported when used (registering the plugins must not import pandas)
_CLASSES = {
    "QlibBinDataset": "qframe.plugins.datasets.qlib_bin",
    "SyntheticDataset": "qframe.plugins.datasets.synthetic",
    "TableDataset": "qframe.plugins.datasets.tables",
}
__all__ = list(_CLASSES)


def __getattr__(name: str) -> Any:  # `from qframe.plugins.datasets import TableDataset` still works
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_datasets(register):
    register(
        "synthetic",
        lazy("qframe.plugins.datasets.synthetic:SyntheticDataset"),
        "Seeded synthetic A-share-like market with a planted predictive signal",
    )
    register(
        "csv",
        lazy("qframe.plugins.datasets.tables:TableDataset"),
        "User table, CSV or Parquet by extension: long OHLCV or wide closes",
    )
    register(
        "qlib",
        lazy("qframe.plugins.datasets.qlib_bin:QlibBinDataset"),
        "A Qlib data directory (provider_uri) read directly, no Qlib needed",
    )
