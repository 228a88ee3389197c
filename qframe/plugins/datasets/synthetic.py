"""A seeded synthetic A-share-like daily market with a planted, weak, persistent signal.

The generator is deterministic in its parameters (same parameters -> bit-identical
arrays) and fully vectorised over instruments; only the price recursion (which carries
returns through suspensions and limit moves) and the AR(1) states step over days.

Model of one instrument i on day t (simple returns)::

    R[t, i] = beta_i * m[t] + B_i . f[t] + a * s[t-1, i] + sigma_i * e[t, i]

* ``m``: market return, N(mu, market_vol) scaled by a slow AR(1) volatility regime.
* ``f``: ``n_styles`` style-factor returns (sd ``style_vol``), exposures ``B_i ~ N(0, 1)``.
* ``e``: Student-t (4 dof, unit variance): fat tails, so +-``limit`` moves happen.
* ``s``: the planted latent state, a unit-variance AR(1) with persistence ``signal_phi``.
  It loads on the NEXT day's return only (``s[t-1]`` in ``R[t]``), so knowing ``s[t]`` at
  the close of ``t`` is genuinely predictive. ``a`` is set so that the mean daily
  cross-sectional Rank IC of ``s[t]`` with ``R[t+1]`` is about ``signal_ic`` (its Pearson IC
  is ~0.91x that). With persistence ``signal_phi`` the state still predicts Qlib's label
  (the return from t+1 to t+2) at about ``signal_phi * signal_ic``.
* The state also leaks, noisily, into what a feature model can see: log volume gets
  ``volume_leak * s[t]`` on top of an AR(1) volume noise of sd ``volume_noise``, and the
  log intraday range gets ``range_leak * s[t]``. The defaults give single volume
  features a daily Rank IC of a few hundredths, so an Alpha158-style model can find it.

Market microstructure: daily close-to-close moves are capped at +-``limit`` (10%, as
on Chinese exchanges), the excess carrying over to the next bars; ``ipo_share`` of the
instruments list late and ``delist_share`` delist; suspensions (runs of missing bars)
start with probability ``suspension_rate`` per day. Prices are adjusted (``factor``
steps up at dividends/splits, raw price = close / factor), start between 5 and 100;
volumes lie around 1e5..1e7; ``vwap`` lies within [low, high]; ``change`` is close over
the previous bar's close - 1. The universe (``universe_size`` names, default half the
market like csi300's share of A-shares) is re-chosen every ``rebalance_days`` by the
previous window's mean traded value among instruments listed for >= 20 days. The
benchmark index (``benchmark_code``) is the cap- or equal-weighted return of the
previous day's universe, starting at 1000.

All values are rounded to float32 precision (like Qlib's bin files) so the on-disk
cache (float32 ``.npz`` keyed by a hash of the parameters) reloads bit-identically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qframe.core.atomic import atomic_path
from qframe.core.data import MarketData
from qframe.core.errors import ConfigError, DataError
from qframe.core.validate import select_market, validate_market

#: bump when the generator's output changes, so old caches are not reused
GENERATOR_VERSION = 1
#: daily Pearson IC / Rank IC of the state on next-day returns under t(4) noise, measured over seeds 0-1, IC 0.05-0.2
RANK_TO_PEARSON = 0.91
FIELDS = ("open", "high", "low", "close", "volume", "vwap", "factor", "change")


@dataclasses.dataclass(frozen=True)
class SyntheticParams:
    """Generator parameters (see the module docstring for their meaning)."""

    n_instruments: int = 300
    n_days: int = 2500
    seed: int = 0
    first_day: str = "2014-01-02"
    universe_size: int | None = None
    rebalance_days: int = 60
    signal_ic: float = 0.1
    signal_phi: float = 0.95
    volume_leak: float = 0.25
    volume_noise: float = 0.35
    range_leak: float = 0.1
    market_vol: float = 0.012
    market_drift: float = 0.0003
    idio_vol: float = 0.015
    n_styles: int = 3
    style_vol: float = 0.005
    limit: float = 0.10
    suspension_rate: float = 0.002
    ipo_share: float = 0.3
    delist_share: float = 0.1
    benchmark_weighting: str = "cap"
    benchmark_code: str = "SH000300"

    def key(self) -> str:
        blob = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.blake2b(blob.encode(), digest_size=10).hexdigest()

    def check(self) -> None:
        """Raise ConfigError naming the first invalid ``dataset.<key>``."""
        if self.n_instruments < 2:
            raise ConfigError(f"dataset.n_instruments={self.n_instruments}: need at least 2")
        if self.n_days < 2:
            raise ConfigError(f"dataset.n_days={self.n_days}: need at least 2")
        if self.universe_size is not None and not 1 <= self.universe_size <= self.n_instruments:
            raise ConfigError(f"dataset.universe_size={self.universe_size}: must be in 1..n_instruments")
        if self.rebalance_days < 1:
            raise ConfigError(f"dataset.rebalance_days={self.rebalance_days}: must be >= 1")
        if not 0 <= self.signal_ic < 1:
            raise ConfigError(f"dataset.signal_ic={self.signal_ic}: must be in [0, 1)")
        if not 0 <= self.signal_phi < 1:
            raise ConfigError(f"dataset.signal_phi={self.signal_phi}: must be in [0, 1)")
        if not 0 < self.limit < 1:
            raise ConfigError(f"dataset.limit={self.limit}: must be in (0, 1)")
        if self.benchmark_weighting not in ("cap", "equal"):
            raise ConfigError(f"dataset.benchmark_weighting={self.benchmark_weighting!r}: use 'cap' or 'equal'")
        for name in ("suspension_rate", "ipo_share", "delist_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"dataset.{name}={getattr(self, name)}: must be in [0, 1)")
        try:
            pd.Timestamp(self.first_day)
        except ValueError as exc:
            raise ConfigError(f"dataset.first_day={self.first_day!r}: not a date") from exc


def instrument_codes(n: int) -> pd.Index:
    """A-share-like codes SH600000, SZ000001, SH600002, ..., sorted (as every loader orders instruments)."""
    i = np.arange(n)
    sh = np.char.add("SH", np.char.zfill((600000 + i).astype(str), 6))
    sz = np.char.add("SZ", np.char.zfill(i.astype(str), 6))
    return pd.Index(np.sort(np.where(i % 2 == 0, sh, sz).astype(str)))


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], phi: float) -> np.ndarray:
    """Unit-variance stationary AR(1) along axis 0."""
    shocks = rng.standard_normal(shape) * np.sqrt(1.0 - phi * phi)
    out = np.empty(shape)
    out[0] = rng.standard_normal(shape[1:])
    for t in range(1, shape[0]):
        out[t] = phi * out[t - 1] + shocks[t]
    return out


def _f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32).astype(np.float64)


def generate(p: SyntheticParams) -> tuple[MarketData, np.ndarray]:
    """Generate the market and its latent state (T, N); see the module docstring."""
    p.check()
    T, N, K = p.n_days, p.n_instruments, p.n_styles
    # independent streams per component, so changing one part leaves the others' draws alone
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(p.seed).spawn(10)]
    r_static, r_mkt, r_state, r_idio, r_life, r_susp, r_bar, r_vol, r_fac, r_uni = rngs
    t_axis = np.arange(T)[:, None]

    # static characteristics
    beta = np.clip(r_static.normal(1.0, 0.3, N), 0.2, 2.0)
    expo = r_static.standard_normal((N, K))
    sigma = p.idio_vol * np.exp(r_static.normal(0.0, 0.3, N) - 0.045)
    p0 = np.exp(r_static.uniform(np.log(5.0), np.log(100.0), N))
    shares = np.exp(r_static.normal(np.log(1e9), 1.0, N))
    log_v0 = r_static.uniform(np.log(3e5), np.log(3e6), N)

    # market, styles, state, idiosyncratic
    regime = 0.3 * _ar1(r_mkt, (T, 1), 0.98)
    mkt = p.market_drift + p.market_vol * np.exp(regime - 0.045) * r_mkt.standard_normal((T, 1))
    styles = p.style_vol * r_mkt.standard_normal((T, K))
    state = _ar1(r_state, (T, N), p.signal_phi)
    eps = sigma * r_idio.standard_t(4, (T, N)) / np.sqrt(2.0)
    # loading a: Pearson corr(s, R) = a / sqrt(a^2 + D), D = the expected cross-sectional variance of everything
    # else; the target is a Rank IC, which the fat tails make ~1.1x the Pearson one (measured over seeds/strengths)
    pearson = RANK_TO_PEARSON * p.signal_ic
    disp = beta.var() * (p.market_vol**2 + p.market_drift**2) + (expo.var(axis=0) * p.style_vol**2).sum()
    disp += (sigma**2).mean()
    a = pearson * np.sqrt(disp / (1.0 - pearson**2))
    ret = beta * mkt + styles @ expo.T + eps
    ret[1:] += a * state[:-1]
    log_ret = np.log1p(np.maximum(ret, -0.95))

    # listings and delistings
    late = r_life.random(N) < p.ipo_share
    listed = np.where(late, r_life.integers(1, max(2, int(0.8 * T)), N), 0)
    delist_at = listed + r_life.integers(250, max(251, T), N)
    delisted = (r_life.random(N) < p.delist_share) & (delist_at < T)
    ends = np.where(delisted, delist_at, T)
    alive = (t_axis >= listed) & (t_axis < ends)

    # suspensions: runs starting at random days; a running max of run ends marks the days inside a run
    starts = r_susp.random((T, N)) < p.suspension_rate
    long_run = r_susp.random((T, N)) < 0.1
    dur = np.where(long_run, r_susp.geometric(0.05, (T, N)), r_susp.geometric(0.35, (T, N)))
    run_end = np.where(starts, t_axis + dur, -1)
    suspended = np.maximum.accumulate(run_end, axis=0) > t_axis
    bar = alive & (~suspended | (t_axis == listed))

    # prices: returns missed while suspended or beyond the limit carry over to the next bars
    lim_hi, lim_lo = np.log1p(p.limit), np.log1p(-p.limit)
    logp = np.log(p0)
    carry = np.zeros(N)
    log_close = np.full((T, N), np.nan)
    for t in range(T):
        want = carry + log_ret[t]
        step = np.clip(want, lim_lo, lim_hi)
        on = bar[t] & (t != listed)
        logp = np.where(on, logp + step, logp)
        carry = np.where(on, want - step, np.where(alive[t] & (t != listed), want, 0.0))
        log_close[t] = np.where(bar[t], logp, np.nan)
    close = _f32(np.exp(log_close))
    prev = pd.DataFrame(close).ffill().shift(1).to_numpy()
    prev = np.where(np.isnan(prev), close, prev)  # first bar: open around its own close

    # open / high / low / vwap around the close; the range leaks the state
    day_sd = np.sqrt((beta * p.market_vol) ** 2 + K * p.style_vol**2 + sigma**2)
    gap = 0.3 * np.log(close / prev) + r_bar.normal(0.0, 0.3, (T, N)) * day_sd
    lo_band, hi_band = prev * (1 - p.limit), prev * (1 + p.limit)
    opn = np.clip(prev * np.exp(gap), lo_band, hi_band)
    rng_sd = 0.6 * day_sd * np.exp(p.range_leak * state)
    high = np.clip(np.maximum(opn, close) * np.exp(np.abs(r_bar.standard_normal((T, N))) * rng_sd), None, hi_band)
    low = np.clip(np.minimum(opn, close) * np.exp(-np.abs(r_bar.standard_normal((T, N))) * rng_sd), lo_band, None)
    high, low = np.maximum(high, np.maximum(opn, close)), np.minimum(low, np.minimum(opn, close))
    vwap = (opn + high + low + 2 * close) / 5 * np.exp(r_bar.normal(0.0, 0.1, (T, N)) * rng_sd)
    vwap = np.clip(vwap, low, high)

    # volume: level + market activity + response to |return| + AR(1) noise + the leaked state
    log_vol = (
        log_v0
        + 0.3 * regime
        + 0.3 * np.abs(np.nan_to_num(close / prev - 1.0)) / day_sd
        + p.volume_noise * _ar1(r_vol, (T, N), 0.6)
        + p.volume_leak * state
    )
    volume = np.exp(log_vol)

    # adjustment factor: steps at dividends (~1 a year) and rare splits, 1 at listing
    jump = np.where(r_fac.random((T, N)) < 1 / 250, 1 + r_fac.uniform(0.005, 0.04, (T, N)), 1.0)
    jump = np.where(r_fac.random((T, N)) < 1 / 2500, jump * 2.0, jump)
    factor = np.cumprod(np.where(t_axis > listed, jump, 1.0), axis=0)

    fields = {"open": opn, "high": high, "low": low, "close": close, "volume": volume, "vwap": vwap, "factor": factor}
    fields = {k: _f32(np.where(bar, v, np.nan)) for k, v in fields.items()}
    close = fields["close"]
    fields["change"] = _f32(close / pd.DataFrame(close).ffill().shift(1).to_numpy() - 1.0)

    # universe: top universe_size by mean traded value over the last window, re-chosen every rebalance_days
    size = p.universe_size or max(1, N // 2)
    R = p.rebalance_days
    amount = np.nan_to_num(close * fields["volume"])
    csum = np.vstack([np.zeros((1, N)), np.cumsum(amount, axis=0)])
    ccount = np.vstack([np.zeros((1, N)), np.cumsum(bar, axis=0)])
    reb = np.arange(0, T, R)
    hi_i, lo_i = np.maximum(reb, 1), np.maximum(reb - R, 0)
    mean_amt = (csum[hi_i] - csum[lo_i]) / np.maximum(ccount[hi_i] - ccount[lo_i], 1)
    eligible = alive[reb] & ((reb[:, None] - listed >= 20) | (reb[:, None] == 0))
    score = np.where(eligible & (mean_amt > 0), mean_amt, -np.inf)
    top = np.argsort(-score, axis=1, kind="stable")[:, :size]
    members = np.zeros((len(reb), N), dtype=bool)
    np.put_along_axis(members, top, np.take_along_axis(score, top, axis=1) > -np.inf, axis=1)
    universe = members[np.arange(T) // R] & alive

    # benchmark: yesterday's members weighted by yesterday's cap (or equally), today's change
    cap = pd.DataFrame(close / fields["factor"] * shares).ffill().to_numpy()
    w = universe[:-1] * (np.nan_to_num(cap[:-1]) if p.benchmark_weighting == "cap" else 1.0)
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
    bench_ret = np.concatenate([[0.0], (w * np.nan_to_num(fields["change"][1:])).sum(axis=1)])
    calendar = pd.bdate_range(p.first_day, periods=T)
    bench = pd.Series(_f32(1000.0 * np.cumprod(1.0 + bench_ret)), index=calendar, name=p.benchmark_code)

    md = MarketData(
        calendar=calendar,
        instruments=instrument_codes(N),
        fields=fields,
        universe=universe,
        benchmark=bench,
        name=f"synthetic(seed={p.seed})",
        notes=[f"synthetic market {p.key()}: planted signal ic={p.signal_ic}, phi={p.signal_phi}"],
    )
    return md, _f32(state)


def save_npz(path: Path, md: MarketData, state: np.ndarray) -> None:
    """Write the market atomically (see :func:`qframe.core.atomic.atomic_path`)."""
    arrays = {f"field_{k}": v.astype(np.float32) for k, v in md.fields.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            calendar=md.calendar.to_numpy(),
            instruments=np.asarray(md.instruments, dtype=str),
            universe=md.universe,
            benchmark=md.benchmark.to_numpy(np.float64),
            benchmark_name=np.asarray(str(md.benchmark.name)),
            name=np.asarray(md.name),
            notes=np.asarray(md.notes, dtype=str),
            state=state.astype(np.float32),
            **arrays,
        )


def load_npz(path: Path) -> tuple[MarketData, np.ndarray]:
    """Read a market written by :func:`save_npz`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            calendar = pd.DatetimeIndex(z["calendar"])
            fields = {k[6:]: z[k].astype(np.float64) for k in z.files if k.startswith("field_")}
            md = MarketData(
                calendar=calendar,
                instruments=pd.Index(z["instruments"].astype(str).tolist()),
                fields=fields,
                universe=z["universe"],
                benchmark=pd.Series(z["benchmark"], index=calendar, name=str(z["benchmark_name"])),
                name=str(z["name"]),
                notes=z["notes"].astype(str).tolist(),
            )
            return md, z["state"].astype(np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot read the cached synthetic market ({exc}); delete the file to regenerate"
        ) from exc


class SyntheticDataset:
    """The synthetic market as a dataset plugin.

    Takes :class:`SyntheticParams` keys plus the common ``start``/``end`` (a date range
    cut from the generated calendar, which begins at ``first_day``), ``instruments`` and
    ``name``. After :meth:`load`, ``self.latent`` holds the planted state aligned with the
    returned market (for tests and oracle baselines; never a feature).
    """

    # limit moves, lots and suspensions are modelled on A-shares: market=auto trades it by the cn rules
    region = "cn"
    region_source = "synthetic A-share-like market"

    def __init__(
        self,
        start: str | None = None,
        end: str | None = None,
        instruments: list[str] | None = None,
        name: str | None = None,
        **params: Any,
    ) -> None:
        valid = {f.name for f in dataclasses.fields(SyntheticParams)}
        unknown = sorted(set(params) - valid)
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join('dataset.' + k for k in unknown)}; valid keys: "
                f"{', '.join(sorted(valid | {'start', 'end', 'instruments', 'name'}))}"
            )
        self.params = SyntheticParams(**params)
        self.params.check()
        self.start, self.end, self.instruments, self.name = start, end, instruments, name
        self.latent: np.ndarray | None = None

    def cache_path(self, cache_dir: Path) -> Path:
        return Path(cache_dir).expanduser() / f"synthetic-{self.params.key()}.npz"

    def load(self, cache_dir: Path | None = None) -> MarketData:
        """Generate (or reload from ``cache_dir``) the market, then cut it to start/end/instruments."""
        path = None if cache_dir is None else self.cache_path(cache_dir)
        if path is not None and path.is_file():
            md, state = load_npz(path)
        else:
            md, state = generate(self.params)
            if path is not None:
                save_npz(path, md, state)
        if self.name:
            md.name = self.name
        source = f"synthetic dataset (seed {self.params.seed})"
        md.fields["_state"] = state  # rides along through the date/instrument cut
        md = select_market(md, source, self.start, self.end, self.instruments)
        self.latent = md.fields.pop("_state")
        return validate_market(md, source)
