"""Qlib's Alpha158 feature set, computed over the whole (date x instrument) panel at once.

Matches Qlib 0.9.7's ``Alpha158`` handler (default config: kbar, price with
window 0, and 29 rolling operators over ``windows``) number for number; see
:mod:`qframe.core.ops` for the operator semantics. Element-wise arithmetic runs
in float32 like Qlib's (its bars are float32) and the rolling operators in
float64, so even cancellations such as ``$close/Ref($close,1)-1`` round as
Qlib's do. Intermediates (returns, rolling max/min, std of close, ...) are
computed once and shared between the features that use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from qframe.core import ops
from qframe.core.data import MarketData
from qframe.core.errors import ConfigError
from qframe.core.features import FeatureResult, empty_float32

KBAR = ("KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2")
PRICE = ("OPEN", "HIGH", "LOW", "VWAP")
ROLLING = (
    "ROC", "MA", "STD", "BETA", "RSQR", "RESI", "MAX", "MIN", "QTLU", "QTLD", "RANK", "RSV", "IMAX", "IMIN", "IMXD",
    "CORR", "CORD", "CNTP", "CNTN", "CNTD", "SUMP", "SUMN", "SUMD", "VMA", "VSTD", "WVMA", "VSUMP", "VSUMN", "VSUMD",
)  # fmt: skip
GROUPS = {"kbar": KBAR, "price": PRICE, "rolling": ROLLING}

_FIELD_ORDER = ("open", "high", "low", "close", "volume", "vwap")
_OHLC = frozenset({"open", "high", "low", "close"})
_NEEDS: dict[str, frozenset[str]] = {
    "KMID": frozenset({"open", "close"}),
    "KLEN": frozenset({"open", "high", "low"}),
    "KMID2": _OHLC,
    "KUP": _OHLC - {"low"},
    "KUP2": _OHLC,
    "KLOW": _OHLC - {"high"},
    "KLOW2": _OHLC,
    "KSFT": _OHLC,
    "KSFT2": frozenset({"high", "low", "close"}),
    "OPEN": frozenset({"open", "close"}),
    "HIGH": frozenset({"high", "close"}),
    "LOW": frozenset({"low", "close"}),
    "VWAP": frozenset({"vwap", "close"}),
    "MAX": frozenset({"high", "close"}),
    "MIN": frozenset({"low", "close"}),
    "RSV": frozenset({"high", "low", "close"}),
    "IMAX": frozenset({"high"}),
    "IMIN": frozenset({"low"}),
    "IMXD": frozenset({"high", "low"}),
    **{k: frozenset({"close", "volume"}) for k in ("CORR", "CORD", "WVMA")},
    **{k: frozenset({"volume"}) for k in ("VMA", "VSTD", "VSUMP", "VSUMN", "VSUMD")},
}
_EPS = 1e-12  # Qlib's guard in denominators
VERSION = 1  # bump when the numbers this module produces change (invalidates feature caches)


def _needs(op: str) -> frozenset[str]:
    return _NEEDS.get(op, frozenset({"close"}))


class Alpha158:
    """Qlib's Alpha158: 9 kbar, 4 price and 29 rolling operators x ``windows`` (158 by default).

    Args:
        windows: rolling window lengths (Qlib's default ``[5, 10, 20, 30, 60]``).
        price_windows: lags d of the price features ``OPEN{d} = Ref($open, d) / $close`` (Qlib: ``[0]``).
        include: groups ("kbar", "price", "rolling") or operator names ("MA", "CORR", ...) to keep;
            None keeps all.
        exclude: groups or operator names to leave out.
    """

    #: every feature looks at one instrument's own history only, so the handler may compute instrument blocks
    per_instrument = True

    def __init__(
        self,
        windows: Iterable[int] = (5, 10, 20, 30, 60),
        price_windows: Iterable[int] = (0,),
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
    ) -> None:
        self.windows = [int(w) for w in windows]
        self.price_windows = [int(d) for d in price_windows]
        if any(w < 1 for w in self.windows) or any(d < 0 for d in self.price_windows):
            raise ConfigError(
                f"alpha158: windows must be >= 1 and price_windows >= 0 (got {self.windows}, {self.price_windows})"
            )
        if len(set(self.windows)) != len(self.windows) or len(set(self.price_windows)) != len(self.price_windows):
            raise ConfigError(f"alpha158: windows {self.windows} / price_windows {self.price_windows} repeat a value")
        self.include = None if include is None else [str(x) for x in include]
        self.exclude = [str(x) for x in (exclude or [])]
        known = {*GROUPS, *KBAR, *PRICE, *ROLLING}
        unknown = [x for x in [*(self.include or []), *self.exclude] if x not in known]
        if unknown:
            raise ConfigError(
                f"alpha158: unknown include/exclude entries {unknown}; "
                f"use groups {sorted(GROUPS)} or operator names such as {list(ROLLING[:4])}"
            )
        self._specs = self._build_specs()

    def _active(self, group: str, op: str) -> bool:
        keep = self.include is None or group in self.include or op in self.include
        return keep and group not in self.exclude and op not in self.exclude

    def _build_specs(self) -> list[tuple[str, str]]:
        """(feature name, operator) in Qlib's column order."""
        specs = [(k, k) for k in KBAR if self._active("kbar", k)]
        specs += [(f"{p}{d}", p) for p in PRICE if self._active("price", p) for d in self.price_windows]
        specs += [(f"{op}{w}", op) for op in ROLLING if self._active("rolling", op) for w in self.windows]
        return specs

    @property
    def lookback(self) -> int:
        """Days of history the longest window looks back over (its first days are warm-up)."""
        return max([*self.windows, *self.price_windows, 1])

    def names(self) -> list[str]:
        """Feature names in Qlib's column order (before dropping any for missing fields)."""
        return [name for name, _ in self._specs]

    def config(self) -> dict:
        """The parameters that define the output (for a cache key)."""
        return {
            "name": "alpha158",
            "version": VERSION,
            "windows": list(self.windows),
            "price_windows": list(self.price_windows),
            "include": None if self.include is None else list(self.include),
            "exclude": list(self.exclude),
        }

    def compute(self, market: MarketData) -> FeatureResult:
        """Compute every feature the market's fields allow; the rest go to ``dropped`` with the reason."""
        dropped: dict[str, str] = {}
        active: list[tuple[str, str]] = []
        for name, op in self._specs:
            missing = [f for f in _FIELD_ORDER if f in _needs(op) and f not in market.fields]
            if missing:
                dropped[name] = "needs " + ", ".join(f"${f}" for f in missing)
            else:
                active.append((name, op))
        names = [name for name, _ in active]
        T, N = market.shape
        values = empty_float32((T, N, len(names)))
        _Builder(market, values, names).run({op for _, op in active}, self.windows, self.price_windows)
        return FeatureResult(names, values, dropped, market.calendar, market.instruments)


class _Builder:
    """One compute run: float32 inputs, the output slots, and one method per group of
    features sharing intermediates (each method's temporaries die when it returns)."""

    def __init__(self, market: MarketData, values: np.ndarray, names: list[str]) -> None:
        self.f = {k: v.astype(np.float32) for k, v in market.fields.items() if k in _FIELD_ORDER}
        self.span = ops.stored_span(*self.f.values())
        self.start = ops.first_stored(self.span)
        self.values = values
        self.slot = {name: k for k, name in enumerate(names)}

    def put(self, name: str, arr: np.ndarray) -> None:
        k = self.slot.get(name)
        if k is not None:
            self.values[:, :, k] = arr

    def run(self, on: set[str], windows: list[int], price_windows: list[int]) -> None:
        steps: list[tuple[set[str], Callable[..., None]]] = [
            (set(KBAR), self._kbar),
            (set(PRICE), lambda: self._price(on, price_windows)),
            ({"ROC", "MA", "STD", "BETA", "RSQR", "RESI", "CORR"}, lambda: self._close(on, windows)),
            ({"MAX", "MIN", "QTLU", "QTLD", "RANK", "RSV", "IMAX", "IMIN", "IMXD"}, lambda: self._range(on, windows)),
            ({"CORD"}, lambda: self._cord(windows)),
            ({"CNTP", "CNTN", "CNTD"}, lambda: self._counts(windows)),
            ({"SUMP", "SUMN", "SUMD"}, lambda: self._up_down("SUM", self.f["close"], windows)),
            ({"VMA", "VSTD", "WVMA"}, lambda: self._volume(on, windows)),
            ({"VSUMP", "VSUMN", "VSUMD"}, lambda: self._up_down("VSUM", self.f.get("volume"), windows)),
        ]
        with np.errstate(divide="ignore", invalid="ignore"):
            for group, step in steps:
                if on & group:
                    step()
        # Qlib has no rows outside an instrument's stored bars
        self.values[~self.span] = np.nan

    def _kbar(self) -> None:
        o, h, lo, c = (self.f.get(k) for k in ("open", "high", "low", "close"))
        if o is not None:
            self.put("KMID", (c - o) / o)
        if h is not None and lo is not None:
            rng = h - lo + np.float32(_EPS)
            if o is not None:
                self.put("KLEN", (h - lo) / o)
                self.put("KMID2", (c - o) / rng)
                up, down = h - np.maximum(o, c), np.minimum(o, c) - lo
                self.put("KUP", up / o)
                self.put("KUP2", up / rng)
                self.put("KLOW", down / o)
                self.put("KLOW2", down / rng)
                self.put("KSFT", (2 * c - h - lo) / o)
            self.put("KSFT2", (2 * c - h - lo) / rng)
        elif o is not None and h is not None:
            self.put("KUP", (h - np.maximum(o, c)) / o)
        elif o is not None and lo is not None:
            self.put("KLOW", (np.minimum(o, c) - lo) / o)

    def _price(self, on: set[str], price_windows: list[int]) -> None:
        for p in PRICE:
            if p in on:
                for d in price_windows:
                    self.put(f"{p}{d}", ops.ref(self.f[p.lower()], d) / self.f["close"])

    def _close(self, on: set[str], windows: list[int]) -> None:
        """ROC, MA, STD, BETA, RSQR, RESI, CORR: all share Std($close, w)."""
        c = self.f["close"]
        std_c = {w: ops.std(c, w) for w in windows}
        for w in windows:
            if "ROC" in on:
                self.put(f"ROC{w}", ops.ref(c, w) / c)
            if "MA" in on:
                self.put(f"MA{w}", ops.mean(c, w) / c)
            if "STD" in on:
                self.put(f"STD{w}", std_c[w] / c)
        if on & {"BETA", "RSQR", "RESI"}:
            for lr in ops.linreg(c, windows, std_c):
                self.put(f"BETA{lr.window}", lr.slope / c)
                self.put(f"RSQR{lr.window}", lr.rsquare)
                self.put(f"RESI{lr.window}", lr.resi / c)
        if "CORR" in on:
            logv = np.log(self.f["volume"] + np.float32(1))
            for w in windows:
                self.put(f"CORR{w}", ops.corr(c, logv, w, std_x=std_c[w]))

    def _range(self, on: set[str], windows: list[int]) -> None:
        """MAX, MIN, RSV (share Max($high)/Min($low)), QTLU/QTLD (one sort), RANK, IMAX/IMIN/IMXD."""
        f, c = self.f, self.f["close"]
        # float32 like the bars (exact: max/min pick a value); Qlib's come from pandas as float64
        hmax = ops.maxes(f["high"], windows) if on & {"MAX", "RSV"} else {}
        lmin = ops.mins(f["low"], windows) if on & {"MIN", "RSV"} else {}
        for w in windows:
            if "MAX" in on:
                self.put(f"MAX{w}", hmax[w].astype(np.float64) / c)
            if "MIN" in on:
                self.put(f"MIN{w}", lmin[w].astype(np.float64) / c)
            if "RSV" in on:
                lo = lmin[w].astype(np.float64)
                self.put(f"RSV{w}", (c - lo) / (hmax[w] - lo + _EPS))
        del hmax, lmin
        if "RANK" in on:
            for w, r in ops.ranks(c, windows).items():
                self.put(f"RANK{w}", r)
        if on & {"QTLU", "QTLD"}:
            for w in windows:
                qtlu, qtld = ops.quantiles(c, w, (0.8, 0.2))
                self.put(f"QTLU{w}", qtlu / c)
                self.put(f"QTLD{w}", qtld / c)
        for w in windows:
            imax = ops.idxmax(f["high"], w, self.start) if on & {"IMAX", "IMXD"} else None
            imin = ops.idxmin(f["low"], w, self.start) if on & {"IMIN", "IMXD"} else None
            if "IMAX" in on:
                self.put(f"IMAX{w}", imax / w)
            if "IMIN" in on:
                self.put(f"IMIN{w}", imin / w)
            if "IMXD" in on:
                self.put(f"IMXD{w}", (imax - imin) / w)

    def _cord(self, windows: list[int]) -> None:
        c, v = self.f["close"], self.f["volume"]
        ret = c / ops.ref(c, 1)
        logdv = np.log(v / ops.ref(v, 1) + np.float32(1))
        for w in windows:
            self.put(f"CORD{w}", ops.corr(ret, logdv, w))

    def _counts(self, windows: list[int]) -> None:
        c = self.f["close"]
        c1 = ops.ref(c, 1)
        up, down = ops.compare(c, c1, ">", self.span), ops.compare(c, c1, "<", self.span)
        for w in windows:
            p, n = ops.mean(up, w), ops.mean(down, w)
            self.put(f"CNTP{w}", p)
            self.put(f"CNTN{w}", n)
            self.put(f"CNTD{w}", p - n)

    def _up_down(self, prefix: str, x: np.ndarray, windows: list[int]) -> None:
        """SUMP/SUMN/SUMD (or VSUM*): up-moves, down-moves and their difference over total moves."""
        diff = x - ops.ref(x, 1)
        gain, loss = np.maximum(diff, np.float32(0)), np.maximum(-diff, np.float32(0))
        del diff
        for w in windows:
            sp, sn = ops.rolling_sum(gain, w), ops.rolling_sum(loss, w)
            # Sum(Abs(d)) = Sum(Greater(d, 0)) + Sum(Greater(-d, 0)): |d| splits exactly into the two
            den = sp + sn + _EPS
            self.put(f"{prefix}P{w}", sp / den)
            self.put(f"{prefix}N{w}", sn / den)
            self.put(f"{prefix}D{w}", (sp - sn) / den)

    def _volume(self, on: set[str], windows: list[int]) -> None:
        c, v = self.f["close"], self.f["volume"]
        vden = v + np.float32(_EPS)
        for w in windows:
            if "VMA" in on:
                self.put(f"VMA{w}", ops.mean(v, w) / vden)
            if "VSTD" in on:
                self.put(f"VSTD{w}", ops.std(v, w) / vden)
        if "WVMA" in on:
            wv = np.abs(c / ops.ref(c, 1) - np.float32(1)) * v
            for w in windows:
                self.put(f"WVMA{w}", ops.std(wv, w) / (ops.mean(wv, w) + _EPS))
