"""Read a Qlib data directory (``provider_uri``) directly, without Qlib installed.

Layout (Qlib's ``dump_bin`` format)::

    calendars/day.txt                      one trading day per line
    instruments/<market>.txt               CODE<TAB>start<TAB>end, one line per membership spell
    features/<code lowercased>/<field>.day.bin
                                           little-endian float32: element 0 is the calendar index
                                           of the first stored day, then one value per calendar day

Every instrument (other than the benchmark code) that is a member of ``market`` at some point in [start, end] is loaded
with its whole stored history in that range (features need a member's history from
before it joined); ``universe`` marks the days each one is a member, from the spells.

What the ``.bin`` files hold is cached (``<cache_dir>/qlib/<key>.arrow``, one small read per file otherwise: ~2 s for
300 instruments), keyed by the files' identity (path, size, modification time in ns): a re-dumped file misses it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.cache import ArrayCache, cache_key
from qframe.core.data import MarketData
from qframe.core.errors import ConfigError, DataError, reject_unknown_params
from qframe.core.markets import check_region
from qframe.core.validate import select_market, validate_market

#: the fields Qlib's data collectors store
DEFAULT_FIELDS = ("open", "high", "low", "close", "volume", "vwap", "factor", "change")


def read_calendar(root: Path, freq: str = "day") -> pd.DatetimeIndex:
    """Trading days from ``calendars/<freq>.txt``."""
    path = root / "calendars" / f"{freq}.txt"
    if not path.is_file():
        raise DataError(f"{path}: calendar file not found; is dataset.provider_uri={root} a Qlib data directory?")
    try:
        lines = [s.strip() for s in path.read_text().splitlines() if s.strip()]
        cal = pd.DatetimeIndex(pd.to_datetime(lines))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the calendar ({exc}); expected one date per line") from exc
    if len(cal) == 0:
        raise DataError(f"{path}: the calendar is empty")
    if not cal.is_monotonic_increasing or not cal.is_unique:
        raise DataError(f"{path}: calendar dates are not sorted and unique")
    return cal


def read_spells(path: Path) -> pd.DataFrame:
    """Membership spells of a Qlib instruments file: columns code (upper case), start, end."""
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        raise DataError(
            f"{path}: instruments file not found; set dataset.market to one of: {', '.join(have) or '(none found)'}"
        )
    try:
        df = pd.read_csv(path, sep="\t", header=None, names=["code", "start", "end"], dtype=str, comment="#")
        spells = pd.DataFrame(
            {
                "code": df["code"].str.strip().str.upper(),
                "start": pd.to_datetime(df["start"]),
                "end": pd.to_datetime(df["end"]),
            }
        )
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read it as CODE<TAB>start<TAB>end lines ({exc})") from exc
    if spells.empty:
        raise DataError(f"{path}: no instruments listed; the universe would be empty")
    if spells.isna().any().any():
        row = int(np.argmax(spells.isna().any(axis=1).to_numpy()))
        raise DataError(f"{path}: line {row + 1} is incomplete; expected CODE<TAB>start<TAB>end")
    return spells


def spells_to_mask(spells: pd.DataFrame, calendar: pd.DatetimeIndex, instruments: pd.Index) -> np.ndarray:
    """(T, N) bool: day t lies inside one of instrument j's spells (inclusive ends)."""
    cols = instruments.get_indexer(spells["code"])
    keep = cols >= 0
    lo = calendar.searchsorted(pd.DatetimeIndex(spells["start"][keep]), "left")
    hi = calendar.searchsorted(pd.DatetimeIndex(spells["end"][keep]), "right")
    # +1 where a spell starts, -1 after it ends; a running sum > 0 is "inside some spell"
    delta = np.zeros((len(calendar) + 1, len(instruments)), dtype=np.int32)
    np.add.at(delta, (lo, cols[keep]), 1)
    np.add.at(delta, (hi, cols[keep]), -1)
    return np.cumsum(delta[:-1], axis=0) > 0


def read_bin(path: Path, lo: int, hi: int, n_cal: int) -> tuple[int, np.ndarray] | None:
    """Values of one ``.day.bin`` file on calendar days [lo, hi): (first index, float32 values), or None if absent."""
    try:
        with open(path, "rb") as f:
            head = np.fromfile(f, dtype="<f4", count=1)
            if head.size == 0:
                raise DataError(f"{path}: empty file; re-dump it or delete it")
            first = int(head[0])
            n_stored = (path.stat().st_size - 4) // 4
            if head[0] != first or first < 0 or first + n_stored > n_cal:
                raise DataError(
                    f"{path}: stores calendar days {head[0]:g}..{head[0] + n_stored - 1:g} but the calendar has "
                    f"{n_cal} days; the file does not belong to this calendars/day.txt"
                )
            a, b = max(lo, first), min(hi, first + n_stored)
            if b <= a:
                return None
            f.seek(4 * (1 + a - first))
            vals = np.fromfile(f, dtype="<f4", count=b - a)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc})") from exc
    return a, vals


def file_identity(path: Path) -> tuple[int, int] | None:
    """(size, modification time in ns) of a file, or None if it is absent: what says it changed."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def read_fields(
    paths: dict[str, list[Path]], lo: int, hi: int, n_cal: int
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(T, N) float64 arrays of calendar days [lo, hi) for each field from ``paths[field]`` (one file per
    instrument), NaN where nothing is stored; and how many instruments have no file (or no data) for each field."""
    data = {f: np.full((hi - lo, len(files)), np.nan) for f, files in paths.items()}
    missing: dict[str, int] = {f: 0 for f in paths}
    # One small read per file is unavoidable with this layout; everything after is vectorised.
    for f, files in paths.items():
        for j, path in enumerate(files):
            got = read_bin(path, lo, hi, n_cal)
            if got is None:
                missing[f] += 1
                continue
            a, vals = got
            data[f][a - lo : a - lo + len(vals), j] = vals
    return data, missing


def cached_fields(
    cache_dir: Path | None, paths: dict[str, list[Path]], lo: int, hi: int, n_cal: int, what: str
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """:func:`read_fields`, from ``cache_dir/qlib`` when the same files (same size and mtime) were read before.

    The values are stored as float32, as the files hold them, so a cached load is exactly the read one.
    """
    if cache_dir is None:
        return read_fields(paths, lo, hi, n_cal)
    identity = {f: [[str(p), file_identity(p)] for p in files] for f, files in paths.items()}
    key = cache_key("qlib-bin", identity, lo, hi, n_cal)
    cache = ArrayCache(Path(cache_dir) / "qlib")
    with cache.lock(key):
        hit = cache.load(key)
        if hit is None:
            data, missing = read_fields(paths, lo, hi, n_cal)
            stored = {f: v.astype(np.float32) for f, v in data.items()}
            meta = {"what": what, "fields": list(paths), "missing": missing, "shape": [hi - lo, len(paths["close"])]}
            cache.save(key, stored, meta)
            return data, missing
    data = {f: hit.arrays[f].astype(np.float64) for f in paths}  # own, writable copies: the mapping goes
    return data, {f: int(k) for f, k in hit.meta["missing"].items()}


def data_region(root: Path, region: str | None) -> tuple[str, str]:
    """(region, how it is known) of a Qlib data directory: ``region`` if set, else a ``cn_data``/``us_data`` part
    of its path (Qlib's names), else Qlib's default region, cn."""
    if region is not None:
        return region, f"dataset.region={region}"
    for part in reversed(root.parts):
        found = re.match(r"(cn|us)_data", part, re.IGNORECASE)
        if found:
            return found[1].lower(), f"Qlib data directory {part}"
    return "cn", "Qlib's default region (dataset.provider_uri names neither cn_data nor us_data; set dataset.region)"


class QlibBinDataset:
    """A market read from a Qlib ``provider_uri`` directory (see module docstring)."""

    def __init__(
        self,
        provider_uri: str,
        market: str = "all",
        benchmark: str | None = "SH000300",
        fields: list[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        instruments: list[str] | None = None,
        freq: str = "day",
        name: str | None = None,
        region: str | None = None,
        **unknown: Any,
    ) -> None:
        reject_unknown_params(
            "dataset 'qlib'",
            "dataset",
            unknown,
            ["provider_uri", "market", "benchmark", "fields", "start", "end", "instruments", "freq", "name", "region"],
        )
        if not provider_uri:
            raise ConfigError("dataset.provider_uri is not set; point it at a Qlib data directory")
        self.root = Path(str(provider_uri)).expanduser()
        self.market = str(market)
        self.benchmark = None if benchmark in (None, "", "null") else str(benchmark).upper()
        self.fields = None if fields is None else [str(f).lstrip("$") for f in fields]
        self.start, self.end, self.instruments = start, end, instruments
        self.freq = freq
        self.name = name or f"qlib:{self.market}"
        self.region, self.region_source = data_region(self.root, check_region(region, "dataset.region"))

    def load(self, cache_dir: Path | None = None) -> MarketData:
        """Read the calendar, the market's spells and every member's fields (from ``cache_dir`` when the same
        files were read before)."""
        root = self.root
        if not root.is_dir():
            raise DataError(f"dataset.provider_uri={root}: directory not found; point it at a Qlib data directory")
        source = f"{root} (market {self.market})"
        full_cal = read_calendar(root, self.freq)
        # Select the date range on the calendar first so only those days are read from disk.
        probe = MarketData(full_cal, pd.Index(["_"]), {"close": np.ones((len(full_cal), 1))}, name=source)
        cal = select_market(probe, source, self.start, self.end).calendar
        lo = int(full_cal.searchsorted(cal[0]))
        hi = lo + len(cal)

        spells = read_spells(root / "instruments" / f"{self.market}.txt")
        # Qlib's all.txt lists the index itself; the benchmark is not a tradable member
        spells = spells[spells["code"] != self.benchmark]
        overlap = (spells["end"] >= cal[0]) & (spells["start"] <= cal[-1])
        if not overlap.any():
            raise DataError(
                f"{root / 'instruments' / f'{self.market}.txt'}: no membership spell overlaps "
                f"{cal[0].date()}..{cal[-1].date()}; widen dataset.start/dataset.end or choose another dataset.market"
            )
        codes = pd.Index(np.sort(spells["code"][overlap].unique()))
        universe = spells_to_mask(spells, cal, codes)

        feat = root / "features"
        if not feat.is_dir():
            raise DataError(f"{feat}: features directory not found under dataset.provider_uri")
        names = self.fields or [
            f for f in DEFAULT_FIELDS if any((feat / c.lower() / f"{f}.{self.freq}.bin").is_file() for c in codes[:50])
        ]
        if "close" not in names:
            names = ["close", *names]
        paths = {f: [feat / code.lower() / f"{f}.{self.freq}.bin" for code in codes] for f in names}
        what = f"{source}: {len(codes)} instruments x {len(cal)} days"
        data, missing = cached_fields(cache_dir, paths, lo, hi, len(full_cal), what)
        notes = []
        for f, k in missing.items():
            if k == len(codes):
                raise DataError(
                    f"{feat}: no instrument of market {self.market!r} has {f}.{self.freq}.bin in "
                    f"{cal[0].date()}..{cal[-1].date()}; drop {f!r} from dataset.fields"
                )
            if k and f == "close":
                notes.append(f"{k} instrument(s) of {self.market!r} have no close data in the date range")

        bench = None
        if self.benchmark is not None:
            path = feat / self.benchmark.lower() / f"close.{self.freq}.bin"
            got = read_bin(path, lo, hi, len(full_cal))
            if got is None:
                raise DataError(
                    f"{path}: benchmark close not found (or no data in the date range); set dataset.benchmark "
                    "to a code that has features/<code>/close.day.bin, or to null for no benchmark"
                )
            b = np.full(len(cal), np.nan)
            b[got[0] - lo : got[0] - lo + len(got[1])] = got[1]
            bench = pd.Series(b, index=cal, name=self.benchmark)

        # a Qlib directory's calendar is its exchange's and its prices are adjusted (factor = adjusted / raw)
        findings = {"source": source, "format": "qlib", "adjust": "qlib (adjusted)"}
        findings["splits"] = {"checked": False, "why": "Qlib's prices are adjusted", "found": []}
        md = MarketData(
            cal, codes, data, universe=universe, benchmark=bench, name=self.name, notes=notes, findings=findings
        )
        md = select_market(md, source, instruments=self.instruments)
        return validate_market(md, source, complete_bars=False)
