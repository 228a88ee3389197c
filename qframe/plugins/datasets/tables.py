"""Markets from user tables: a long OHLCV table or a wide table of closes, CSV or Parquet.

* long: one row per (date, instrument) with open, high, low, close, volume and
  optionally vwap, factor, change. A row with a NaN close is a missing bar.
* wide: a date column plus one column of closes per instrument (NaN = no bar); the
  market then has only ``close`` and the derived ``change``.

``format="auto"`` picks long when the instrument column exists, wide otherwise. Column
names match case-insensitively (``Date``, ``Close``, ``VOLUME``) when only one column fits;
another name is mapped with ``columns`` (qframe field -> your column), e.g.
``dataset.columns.close=Adj_Close``. Dates are read by :mod:`qframe.core.dates` (or with
``date_format``), calendar gaps by :mod:`qframe.core.calendar_gaps` (``calendar_gaps``),
splits by :mod:`qframe.core.corporate_actions` (``adjust``); what was found is kept in
``MarketData.findings`` for the data report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qframe.core import calendar_gaps as calendar_gaps_mod
from qframe.core import corporate_actions
from qframe.core.data import MarketData
from qframe.core.dates import parse_trading_days
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
#: date columns tried, case-insensitively, when ``columns.date`` is not set ("datetime": Qlib's own tables)
DATE_FALLBACKS = ("date", "datetime", "trade_date")


def find_column(df: pd.DataFrame, name: str) -> Any:
    """The column of ``df`` called ``name``: exactly, else the only one whose name matches ignoring case; or None."""
    if name in df.columns:
        return name
    matches = [c for c in df.columns if str(c).lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


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


def parse_dates(values: pd.Series, source: str, column: str, date_format: str | None = None) -> pd.DatetimeIndex:
    """The trading days of a date column (:func:`qframe.core.dates.parse_trading_days`)."""
    return parse_trading_days(values, source, column, date_format)


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
        benchmark_column: str | None = None,
        universe_path: str | None = None,
        start: str | None = None,
        end: str | None = None,
        instruments: list[str] | None = None,
        name: str | None = None,
        date_format: str | None = None,
        calendar_gaps: str = "keep",
        calendar_gap_weekdays: int = 2,
        adjust: str = "none",
        **unknown: Any,
    ) -> None:
        valid = ["path", "format", "columns", "benchmark_path", "benchmark_column", "universe_path", "date_format"]
        valid += ["calendar_gaps", "calendar_gap_weekdays", "adjust"]
        reject_unknown_params("dataset 'csv'", "dataset", unknown, [*valid, "start", "end", "instruments"])
        if not path:
            raise ConfigError("dataset.path is not set; point it at a CSV or Parquet file")
        if format not in ("auto", "long", "wide"):
            raise ConfigError(f"dataset.format={format!r}: use 'auto', 'long' or 'wide'")
        # a null column (the dataset config's default) means "not set": the default name, matched ignoring case
        columns = {k: v for k, v in (columns or {}).items() if v is not None}
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
        self.benchmark_column = None if benchmark_column is None else str(benchmark_column)
        self.date_format = None if not date_format else str(date_format)
        self.gap_weekdays = calendar_gaps_mod.check_mode(calendar_gaps, calendar_gap_weekdays)
        self.calendar_gaps = calendar_gaps
        if adjust not in corporate_actions.ADJUST_MODES:
            raise ConfigError(f"dataset.adjust={adjust!r}; valid options: {', '.join(corporate_actions.ADJUST_MODES)}")
        self.adjust = adjust
        self.universe_path = None if not universe_path else Path(str(universe_path)).expanduser()
        self.start, self.end, self.instruments = start, end, instruments
        self.name = name or self.path.stem

    def _date_column(self, df: pd.DataFrame) -> Any:
        if "date" in self.user_columns:
            return find_column(df, self.columns["date"])
        return next((c for c in map(lambda n: find_column(df, n), DATE_FALLBACKS) if c is not None), None)

    def _column(self, df: pd.DataFrame, key: str) -> Any:
        """``df``'s column for qframe field ``key`` (matched ignoring case), or the name looked for if none."""
        found = find_column(df, self.columns[key])
        return self.columns[key] if found is None else found

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
        inst_col = self._column(df, "instrument")
        fmt = self.format if self.format != "auto" else ("long" if inst_col in df.columns else "wide")
        notes: list[str] = []
        findings: dict[str, Any] = {"source": source, "format": fmt, "date_format": self.date_format or "inferred"}
        if fmt == "long":
            cal, codes, fields = self._pivot_long(df, date_col, source, notes, findings)
            fields = self._adjust(cal, codes, fields, source, notes, findings)
        else:
            cal, codes, fields = self._pivot_wide(df, date_col, source)
            findings["columns"] = {"date": str(date_col)}
            findings["splits"] = {"checked": False, "why": "a wide table of closes has no volume", "found": []}
        cal, fields = self._gaps(cal, fields, notes, findings)
        universe = None
        if self.universe_path is not None:
            universe = self._universe(cal, codes, notes)
        bench = self._benchmark(cal, notes, findings) if self.benchmark_path is not None else None
        md = MarketData(
            cal, codes, fields, universe=universe, benchmark=bench, name=self.name, notes=notes, findings=findings
        )
        md = select_market(md, source, self.start, self.end, self.instruments)
        return validate_market(md, source)

    def _gaps(
        self, cal: pd.DatetimeIndex, fields: dict[str, np.ndarray], notes: list[str], findings: dict[str, Any]
    ) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
        found = calendar_gaps_mod.find_gaps(cal, self.gap_weekdays)
        found["mode"] = self.calendar_gaps
        if self.calendar_gaps == "missing":
            cal, fields, added = calendar_gaps_mod.insert_gap_days(cal, fields, found)
            found["added_days"] = added
        findings["calendar_gaps"] = found
        note = calendar_gaps_mod.gap_note(found, self.calendar_gaps)
        if note:
            notes.append(note)
        return cal, fields

    def _adjust(
        self,
        cal: pd.DatetimeIndex,
        codes: pd.Index,
        fields: dict[str, np.ndarray],
        source: str,
        notes: list[str],
        findings: dict[str, Any],
    ) -> dict[str, np.ndarray]:
        """``dataset.adjust`` applied to a long table's fields; detected splits noted once (corporate_actions)."""
        ca = corporate_actions
        if self.adjust == "factor":
            if not findings["has_factor"]:
                fields = {k: v for k, v in fields.items() if k != "factor"}
            fields = ca.apply_factor(fields, source)
        splits = ca.detect_splits(fields["close"], fields["volume"], cal, codes, fields.get("open"))
        if self.adjust == "detected" and splits:
            fields = ca.back_adjust(fields, splits, cal, codes)
        if self.adjust != "none":
            # the table's own change column (if any) spans the raw jumps: derive it from the adjusted closes
            fields["change"] = derive_change(fields["close"])
        findings["adjust"] = self.adjust
        findings["splits"] = {"checked": True, "found": splits}
        note = ca.split_note(splits, self.adjust)
        if note:
            notes.append(note)
        return fields

    def _pivot_long(
        self, df: pd.DataFrame, date_col: Any, source: str, notes: list[str], findings: dict[str, Any]
    ) -> tuple[pd.DatetimeIndex, pd.Index, dict[str, np.ndarray]]:
        cols = {**{k: self._column(df, k) for k in self.columns}, "date": date_col}
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
        findings["columns"] = {f: str(cols[f]) for f in ("date", "instrument", *present)}
        findings["has_factor"] = "factor" in present
        dates = parse_dates(df[date_col], source, str(date_col), self.date_format)
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
        dates = parse_dates(df[date_col], source, str(date_col), self.date_format)
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

    def _benchmark_column(self, df: pd.DataFrame, date_col: Any) -> Any:
        """The benchmark's value column: ``benchmark_column`` (ignoring case), else ``close``, else the only
        numeric column besides the date."""
        if self.benchmark_column is not None:
            return find_column(df, self.benchmark_column)
        found = find_column(df, "close")
        if found is None:
            numeric = [c for c in df.columns if c != date_col and pd.api.types.is_numeric_dtype(df[c])]
            found = numeric[0] if len(numeric) == 1 else None
        return found

    def _benchmark(self, cal: pd.DatetimeIndex, notes: list[str], findings: dict[str, Any]) -> pd.Series:
        path = self.benchmark_path
        df = read_table(path, "dataset.benchmark_path")
        if isinstance(df.index, pd.MultiIndex) or df.index.name is not None:
            df = df.reset_index()
        date_col = self._date_column(df)
        value_col = self._benchmark_column(df, date_col)
        if date_col is None or value_col is None:
            wanted = repr(self.benchmark_column) if self.benchmark_column else "a 'close' (or a single numeric)"
            raise DataError(
                f"{path}: a benchmark table needs a date column and {wanted} column; columns "
                f"found: {list(map(str, df.columns))}; set dataset.benchmark_column / dataset.columns.date"
            )
        findings["benchmark"] = {"path": str(path), "date_column": str(date_col), "value_column": str(value_col)}
        dates = parse_dates(df[date_col], str(path), str(date_col), self.date_format)
        values = pd.to_numeric(df[value_col], errors="coerce").to_numpy(dtype=float)
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
