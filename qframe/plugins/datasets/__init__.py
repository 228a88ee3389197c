"""Built-in dataset loaders: a seeded synthetic market, user tables, and Qlib's binary data directory."""

from __future__ import annotations

from qframe.core.hookspecs import hookimpl
from qframe.plugins.datasets.qlib_bin import QlibBinDataset
from qframe.plugins.datasets.synthetic import SyntheticDataset
from qframe.plugins.datasets.tables import TableDataset

__all__ = ["QlibBinDataset", "SyntheticDataset", "TableDataset"]


@hookimpl
def register_datasets(register):
    register("synthetic", SyntheticDataset, "Seeded synthetic A-share-like market with a planted predictive signal")
    register("csv", TableDataset, "User table, CSV or Parquet by extension: long OHLCV or wide closes")
    register("qlib", QlibBinDataset, "A Qlib data directory (provider_uri) read directly, no Qlib needed")
