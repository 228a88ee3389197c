"""Markets from user tables: a long OHLCV table or a wide table of closes, CSV or Parquet.

* long: one row per (date, instrument) with open, high, low, close, volume and
  optionally vwap, factor, change. A row with a NaN close is a missing bar.
* wide: a date column plus one column of closes per instrument (NaN = no bar); the
  market then has only ``close`` and the derived ``change``.

``format="auto"`` picks long when the instrument column exists, wide otherwise. Column
names are mapped with ``columns`` (qframe field -> your column), e.g.
``dataset.columns.close=Close``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.data import MarketData
from qframe.core.errors import ConfigError, DataError, reject_unknown_params
from qframe.core.validate import (
    check_table_values,
    check_wide_values,
    select_market,
    validate_market,
)
from qframe.plugins.datasets.qlib_bin import read_spells, spells_to_mask

DEFAULT_COLUMNS = {
    "date": "date",
    "instrument": "instrument",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "vwap": "vwap",
    "factor": "factor",
    "change": "change",
}
LONG_REQUIRED = ("date", "instrument", "open", "high", "low", "close", "volume")
LONG_OPTIONAL = ("vwap", "factor", "change")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: Path, key: str) -> pd.DataFrame:
    """Read a CSV (comma or tab for .tsv) or Parquet file chosen by extension; errors name ``key`` and the file."""
    name = path.name.lower()
    if not path.is_file():
        raise DataError(f"{key}={path}: file not found; check the path (relative paths start at the working directory)")
    try:
        if name.endswith(PARQUET_SUFFIXES):
            return pd.read_parquet(path)
        if name.endswith(CSV_SUFFIXES):
            return pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
    except Exception as exc:  # pandas/pyarrow raise many types for a corrupt file; all mean "cannot read"
        kind = "Parquet" if name.endswith(PARQUET_SUFFIXES) else "CSV"
        raise DataError(f"{key}={path}: cannot read it as {kind} ({type(exc).__name__}: {exc})") from exc
    raise ConfigError(f"{key}={path}: unknown file type; use a .csv/.tsv (optionally compressed) or .parquet file")


def parse_dates(values: pd.Series, source: str, column: str) -> pd.DatetimeIndex:
    """Parse a date column, naming the first value that does not parse."""
    try:
        return pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError):
        bad = pd.to_datetime(values, errors="coerce").isna() & values.notna()
        first = values[bad].iloc[0] if bad.any() else "?"
        raise DataError(f"{source}: column {column!r} holds values that are not dates, e.g. {first!r}") from None


def derive_change(close: np.ndarray) -> np.ndarray:
    """close / previous available close - 1 (Qlib's ``$change``; suspended days are skipped)."""
    prev = pd.DataFrame(close).ffill().shift(1).to_numpy()
    return close / prev - 1.0


class TableDataset:
    """A market read from a long or wide CSV/Parquet table (see module docstring)."""

    # a table says nothing of its market: market=auto takes the default rules (qframe.core.markets)
    region = None
    region_source = "a table"

    def __init__(
        self,
        path: str,
        format: str = "auto",
        columns: dict[str, str] | None = None,
        benchmark_path: str | None = None,
        benchmark_column: str = "close",
        universe_path: str | None = None,
        start: str | None = None,
        end: str | None = None,
        instruments: list[str] | None = None,
        name: str | None = None,
        **unknown: Any,
    ) -> None:
        valid = ["path", "format", "columns", "benchmark_path", "benchmark_column", "universe_path"]
        reject_unknown_params("dataset 'csv'", "dataset", unknown, [*valid, "start", "end", "instruments"])
        if not path:
            raise ConfigError("dataset.path is not set; point it at a CSV or Parquet file")
        if format not in ("auto", "long", "wide"):
            raise ConfigError(f"dataset.format={format!r}: use 'auto', 'long' or 'wide'")
        columns = dict(columns or {})
        bad = sorted(set(columns) - set(DEFAULT_COLUMNS))
        if bad:
            raise ConfigError(
                f"unknown key(s) {', '.join('dataset.columns.' + k for k in bad)}; valid: {', '.join(DEFAULT_COLUMNS)}"
            )
        self.path = Path(str(path)).expanduser()
        self.format = format
        self.user_columns = columns
        self.columns = {**DEFAULT_COLUMNS, **{k: str(v) for k, v in columns.items()}}
        self.benchmark_path = None if not benchmark_path else Path(str(benchmark_path)).expanduser()
        self.benchmark_column = benchmark_column
        self.universe_path = None if not universe_path else Path(str(universe_path)).expanduser()
        self.start, self.end, self.instruments = start, end, instruments
        self.name = name or self.path.stem

    def _date_column(self, df: pd.DataFrame) -> str | None:
        col = self.columns["date"]
        if col not in df.columns and "date" not in self.user_columns:
            # Qlib's own tables call it "datetime"; accept that without a mapping
            col = next((c for c in ("datetime", "Date", "trade_date") if c in df.columns), col)
        return col if col in df.columns else None

    def load(self, cache_dir: Path | None = None) -> MarketData:
        """Read, check and pivot the table; ``cache_dir`` is unused."""
        source = str(self.path)
        df = read_table(self.path, "dataset.path")
        if isinstance(df.index, pd.MultiIndex) or df.index.name is not None:
            df = df.reset_index()  # a Parquet written from an indexed frame keeps date/instrument in the index
        date_col = self._date_column(df)
        if date_col is None:
            raise DataError(
                f"{source}: no date column {self.columns['date']!r}; columns found: {list(map(str, df.columns))}; "
                "map yours with dataset.columns.date=<column>"
            )
        inst_col = self.columns["instrument"]
        fmt = self.format if self.format != "auto" else ("long" if inst_col in df.columns else "wide")
        notes: list[str] = []
        if fmt == "long":
            cal, codes, fields = self._pivot_long(df, date_col, source, notes)
        else:
            cal, codes, fields = self._pivot_wide(df, date_col, source)
        universe = None
        if self.universe_path is not None:
            universe = self._universe(cal, codes, notes)
        bench = self._benchmark(cal, notes) if self.benchmark_path is not None else None
        md = MarketData(cal, codes, fields, universe=universe, benchmark=bench, name=self.name, notes=notes)
        md = select_market(md, source, self.start, self.end, self.instruments)
        return validate_market(md, source)

    def _pivot_long(
        self, df: pd.DataFrame, date_col: str, source: str, notes: list[str]
    ) -> tuple[pd.DatetimeIndex, pd.Index, dict[str, np.ndarray]]:
        cols = {**self.columns, "date": date_col}
        missing = [f for f in LONG_REQUIRED if cols[f] not in df.columns]
        if missing:
            need = ", ".join(f"{f} (column {cols[f]!r})" for f in missing)
            hint = " ".join(f"dataset.columns.{f}=<column>" for f in missing)
            extra = " or use dataset.format=wide for a table of closes" if "instrument" in missing else ""
            raise DataError(
                f"{source}: required column(s) missing: {need}; columns found: {list(map(str, df.columns))}; "
                f"map them with {hint}{extra}"
            )
        present = [f for f in LONG_REQUIRED[2:] + LONG_OPTIONAL if cols[f] in df.columns]
        check_table_values(df, source, {f: cols[f] for f in present if f != "change"}, date_col, cols["instrument"])
        dates = parse_dates(df[date_col], source, date_col)
        inst = df[cols["instrument"]].astype(str).to_numpy()
        cal = pd.DatetimeIndex(np.unique(dates.to_numpy()))
        codes = pd.Index(np.unique(inst))
        t_idx = cal.searchsorted(dates)
        n_idx = codes.searchsorted(inst)
        flat = t_idx.astype(np.int64) * len(codes) + n_idx
        dup = pd.Index(flat).duplicated()
        if dup.any():
            i = int(np.argmax(dup))
            raise DataError(
                f"{source}: {int(dup.sum())} duplicate (date, instrument) row(s); first at data row {i + 1} "
                f"({dates[i].date()}, {inst[i]}); keep one row per instrument and day"
            )
        shape = (len(cal), len(codes))
        fields: dict[str, np.ndarray] = {}
        for f in present:
            arr = np.full(shape, np.nan)
            arr[t_idx, n_idx] = df[cols[f]].to_numpy(dtype=float, na_value=np.nan)
            fields[f] = arr
        has_bar = ~np.isnan(fields["close"])
        if "vwap" not in fields:
            fields["vwap"] = (fields["high"] + fields["low"] + fields["close"]) / 3.0
            notes.append(f"no {cols['vwap']!r} column: vwap = (high + low + close) / 3")
        if "factor" not in fields:
            fields["factor"] = np.where(has_bar, 1.0, np.nan)
        if "change" not in fields:
            fields["change"] = derive_change(fields["close"])
        return cal, codes, fields

    def _pivot_wide(
        self, df: pd.DataFrame, date_col: str, source: str
    ) -> tuple[pd.DatetimeIndex, pd.Index, dict[str, np.ndarray]]:
        inst_cols = [c for c in df.columns if c != date_col]
        if not inst_cols:
            raise DataError(f"{source}: a wide table needs one close column per instrument next to {date_col!r}")
        non_numeric = [str(c) for c in inst_cols if not pd.api.types.is_numeric_dtype(df[c])]
        if non_numeric:
            raise DataError(
                f"{source}: read as a wide table of closes (no {self.columns['instrument']!r} column), but column(s) "
                f"{non_numeric[:5]} are not numeric; for a long table map dataset.columns.instrument=<column>"
            )
        dates = parse_dates(df[date_col], source, date_col)
        values = df[inst_cols].to_numpy(dtype=float, na_value=np.nan)
        check_wide_values(values, [str(c) for c in inst_cols], [d.date() for d in dates], source)
        if dates.has_duplicates:
            raise DataError(f"{source}: date {dates[dates.duplicated()][0].date()} appears twice; keep one row per day")
        order = np.argsort(dates.to_numpy(), kind="stable")
        codes = pd.Index([str(c) for c in inst_cols])
        if codes.has_duplicates:
            raise DataError(f"{source}: instrument column {codes[codes.duplicated()][0]!r} appears twice")
        by_code = np.argsort(codes.to_numpy(), kind="stable")
        close = values[order][:, by_code]
        return dates[order], codes[by_code], {"close": close, "change": derive_change(close)}

    def _universe(self, cal: pd.DatetimeIndex, codes: pd.Index, notes: list[str]) -> np.ndarray:
        spells = read_spells(self.universe_path)
        known = spells["code"].isin(codes)
        if not known.any():
            raise DataError(
                f"dataset.universe_path={self.universe_path}: none of its codes ({', '.join(spells['code'][:5])}...) "
                f"is in {self.path}; codes there look like {', '.join(codes[:5])}"
            )
        if not known.all():
            notes.append(f"{int((~known).sum())} spell(s) in {self.universe_path.name} name codes not in the data")
        return spells_to_mask(spells, cal, codes)

    def _benchmark(self, cal: pd.DatetimeIndex, notes: list[str]) -> pd.Series:
        path = self.benchmark_path
        df = read_table(path, "dataset.benchmark_path")
        if isinstance(df.index, pd.MultiIndex) or df.index.name is not None:
            df = df.reset_index()
        date_col = self._date_column(df)
        if date_col is None or self.benchmark_column not in df.columns:
            raise DataError(
                f"{path}: a benchmark table needs a date column and a {self.benchmark_column!r} column; columns "
                f"found: {list(map(str, df.columns))}; set dataset.benchmark_column / dataset.columns.date"
            )
        dates = parse_dates(df[date_col], str(path), date_col)
        values = pd.to_numeric(df[self.benchmark_column], errors="coerce").to_numpy(dtype=float)
        s = pd.Series(values, index=dates).sort_index()
        s = s[~s.index.duplicated(keep="last")]
        bench = s.reindex(cal)
        gaps = int(bench.isna().sum())
        if gaps == len(cal):
            raise DataError(f"{path}: the benchmark has no value on any trading day of {self.path}")
        if gaps:
            notes.append(f"benchmark {path.name} has no value on {gaps} trading day(s)")
        bench.name = path.stem
        return bench
