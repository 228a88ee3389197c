import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TESTS = Path(__file__).resolve().parent
FIXTURE = TESTS / "fixtures" / "qlib_small"


def random_market(n_days: int = 200, n_inst: int = 12, seed: int = 0):
    """A small random-walk OHLCV market (no planted signal), for plumbing tests."""
    from qframe.core.data import MarketData

    rng = np.random.default_rng(seed)
    ret = rng.normal(0, 0.02, (n_days, n_inst))
    close = 20 * np.exp(np.cumsum(ret, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.005, close.shape))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, close.shape)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, close.shape)))
    volume = rng.lognormal(13, 0.5, close.shape)
    fields = {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "vwap": (high + low + close) / 3,
        "factor": np.ones_like(close),
    }
    calendar = pd.bdate_range("2020-01-01", periods=n_days)
    bench = pd.Series(100 * np.exp(np.cumsum(ret.mean(axis=1))), index=calendar)
    return MarketData(calendar, pd.Index([f"S{i:03d}" for i in range(n_inst)]), fields, benchmark=bench)


@pytest.fixture
def small_market():
    return random_market()


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_earlier_tests(monkeypatch):
    """``mlflow.set_tracking_uri`` (called by every in-process run) also sets ``MLFLOW_TRACKING_URI`` in this
    process's environment: without this, a test would find the store of whichever in-process run came before it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.hookimpl(trylast=True)  # after the -k/-m deselection and after xdist's own hook
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests sharing an expensive fixture run on one xdist worker (``--dist loadgroup``), so it is built once.

    The rule: a test that uses a module-scoped fixture defined under ``tests/`` goes to the group of its module
    (the file's path); else one using a session-scoped one defined here goes to ``session:<fixture name>``.
    Without this, the two workers would each build it (``--dist load`` deals tests out one by one), and a worker
    tears a module fixture down and rebuilds it whenever tests of other modules run in between. A test with its
    own ``@pytest.mark.xdist_group(...)`` keeps it: mark a test that reaches a shared fixture only through
    ``request.getfixturevalue`` (as tests/test_readme.py does) by hand. Tests in no group are dealt out as before.
    Under xdist the units holding a ``@pytest.mark.long`` test are dealt out first (:func:`_long_units_first`).
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = _shared_fixture_group(item)
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))
    if config.getoption("loadgroup", False):  # set on an xdist worker under --dist loadgroup
        items[:] = _long_units_first(items)
        for item in items:
            _group_suffix(item)


def _group_name(item: pytest.Item) -> str | None:
    """The test's xdist group (its groups' names joined, as xdist does), None when it has none."""
    names = sorted(
        {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    )
    return "_".join(names) if names else None


def _long_units_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The order xdist deals the work out in (pyproject sets ``--no-loadscope-reorder``, so it is this one): the
    units holding a ``@pytest.mark.long`` test first, then the rest, each part larger units (more tests) first,
    else in collection order.

    Why: each worker takes the next unit when it is almost idle, so the workers end together unless a long test
    starts near the end (then the suite waits minutes on one worker). Starting the long ones first leaves the
    short ones to even the workers out. xdist's own reorder (units by size) put a long single test after every
    group, wherever its file sorts; this keeps that rule for the rest."""
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        group = _group_name(item)
        units.setdefault(item.nodeid if group is None else f"@{group}", []).append(item)
    order = sorted(
        units.values(),
        key=lambda unit: (not any(i.get_closest_marker("long") for i in unit), -len(unit)),
    )
    return [item for unit in order for item in unit]


def _shared_fixture_group(item: pytest.Item) -> str | None:
    info = getattr(item, "_fixtureinfo", None)
    group = None
    for name in sorted(info.name2fixturedefs if info else ()):
        fixturedef = info.name2fixturedefs[name][-1]
        if fixturedef.scope not in ("module", "session"):
            continue
        code = getattr(fixturedef.func, "__code__", None)  # pytest's own (tmp_path_factory ...) are not here
        if code is None or not Path(code.co_filename).resolve().is_relative_to(TESTS):
            continue
        if fixturedef.scope == "module":
            return item.nodeid.split("::", 1)[0]
        group = group or f"session:{name}"
    return group


def _group_suffix(item: pytest.Item) -> None:
    """What xdist's loadgroup does (``<nodeid>@<group>``: the scheduler keeps one group on one worker), done here:
    xdist 3.8 sets ``item._nodeid``, which pytest 9 no longer reads (its id is ``item._id``), so without this every
    group would be dealt out test by test. A nodeid that already has the suffix (a fixed xdist) is left alone."""
    group = _group_name(item)
    if group is None or "@" in item.nodeid:
        return
    from _pytest.nodeid import NodeId

    item._id = NodeId.parse(f"{item.nodeid}@{group}")
