"""``qframe cache``: what the caches of a work directory hold, how big they are, and clearing them.

A work directory (``./.qframe``, or ``$QFRAME_HOME``, or ``--workdir``) keeps, besides the MLflow store:

* ``cache/<key>.arrow``: computed feature panels (Arrow IPC, memory-mapped on load), one per market content,
  feature set and label; a default 300 x 2500 Alpha158 panel is ~240 MB;
* ``cache/synthetic-<key>.npz``: generated synthetic markets (a few MB each);
* ``cache/qlib/<key>.arrow``: the fields read from a Qlib data directory's ``.bin`` files, keyed by the files'
  size and modification time (300 instruments x 2500 days x 8 fields: ~24 MB);
* ``cache/lightgbm-bins/<key>/``: LightGBM's binned train and valid Datasets, shared by the runs of a multirun
  that fit on the same data with the same binning (a default 300 x 2500 split is ~50 MB);
* ``checkpoints/<run id>/``: PyTorch training checkpoints (one per run; ``model.resume=true`` continues from one).

Everything here can be deleted at any time: a run recomputes what it misses. Clearing never touches MLflow runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from qframe.core.context import default_workdir

KINDS = ("features", "market", "checkpoint", "rolling", "lightgbm-bins")


@dataclass
class Entry:
    """One cached item."""

    kind: str
    path: str
    bytes: int
    modified: float
    what: str


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _describe_panel(path: Path) -> str:
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            meta = json.loads(pa.ipc.open_file(source).schema.metadata[b"qframe"])
    except Exception:  # noqa: BLE001 - an unreadable file is listed as such (and a run would recompute it)
        return "unreadable (a run recomputes it)"
    if "feature_set" not in meta:
        return f"{len(meta.get('names', []))} features"
    return f"{meta['feature_set']} on {meta['market']}: {meta['rows']:,} rows x {len(meta['names'])}"


def _metadata(path: Path) -> dict | None:
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            return json.loads(pa.ipc.open_file(source).schema.metadata[b"qframe"])
    except Exception:  # noqa: BLE001 - an unreadable file is listed as such (and a run would re-read the data)
        return None


def _describe_qlib(path: Path) -> str:
    meta = _metadata(path)
    return "unreadable (a run re-reads the data)" if meta is None else f"Qlib data of {meta.get('what', '?')}"


def _describe_bins(meta: Path) -> str:
    try:
        info = json.loads(meta.read_text())
        return f"LightGBM bins: {info['rows']:,} train + {info['valid_rows']:,} valid rows x {info['features']}"
    except Exception:  # noqa: BLE001 - an unreadable entry is listed as such (and a run would rebuild it)
        return "unreadable (a run rebuilds it)"


def entries(workdir: Path) -> list[Entry]:
    """Every cached item of ``workdir``, oldest first."""
    found: list[Entry] = []
    cache = workdir / "cache"
    if cache.is_dir():
        for path in cache.glob("*.arrow"):
            found.append(Entry("features", str(path), _size(path), path.stat().st_mtime, _describe_panel(path)))
        for path in cache.glob("synthetic-*.npz"):
            what = f"synthetic market {path.stem.removeprefix('synthetic-')}"
            found.append(Entry("market", str(path), _size(path), path.stat().st_mtime, what))
        for path in (cache / "qlib").glob("*.arrow"):  # a Qlib directory's .bin files as read (qlib_bin.py)
            found.append(Entry("market", str(path), _size(path), path.stat().st_mtime, _describe_qlib(path)))
        for path in (cache / "rolling").glob("*"):  # a rolling study's finished windows (qframe.core.rolling)
            if path.is_dir():
                what = f"rolling study: {len(list(path.glob('window-*.json')))} finished window(s)"
                found.append(Entry("rolling", str(path), _size(path), path.stat().st_mtime, what))
        for path in (cache / "lightgbm-bins").glob("*/meta.json"):  # qframe.plugins.models.lightgbm_bins
            what = _describe_bins(path)
            found.append(Entry("lightgbm-bins", str(path.parent), _size(path.parent), path.stat().st_mtime, what))
    checkpoints = workdir / "checkpoints"
    if checkpoints.is_dir():
        for path in checkpoints.iterdir():
            if path.is_dir():
                what = f"torch checkpoints of run {path.name}"
                found.append(Entry("checkpoint", str(path), _size(path), path.stat().st_mtime, what))
    return sorted(found, key=lambda e: e.modified)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _remove(entry: Entry) -> bool:
    """Delete one entry unless a run holds its lock now; True if it is gone."""
    from filelock import FileLock, Timeout

    path = Path(entry.path)
    lock_path = path.with_suffix(".lock") if path.suffix == ".arrow" else None
    try:
        if lock_path is not None:
            with FileLock(str(lock_path), timeout=0):
                path.unlink(missing_ok=True)
            lock_path.unlink(missing_ok=True)
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except Timeout:
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qframe cache",
        description="The caches of a qframe work directory: feature panels, synthetic markets, torch checkpoints. "
        "Everything in them can be deleted; runs recompute what they miss. MLflow runs are never touched.",
    )
    parser.add_argument("action", nargs="?", choices=("list", "clear"), default="list", help="default: list")
    parser.add_argument("--workdir", type=Path, help="the work directory (default: $QFRAME_HOME or ./.qframe)")
    parser.add_argument("--kind", choices=KINDS, action="append", help="only this kind (repeatable)")
    parser.add_argument("--older-than", type=float, metavar="DAYS", help="clear: only entries unused for DAYS days")
    parser.add_argument("--json", action="store_true", help="list: JSON instead of text")
    return parser


def main(argv: list[str]) -> int:
    """Run ``qframe cache``; returns the exit status."""
    args = _parser().parse_args(argv)
    workdir = args.workdir.expanduser().resolve() if args.workdir else default_workdir(os.environ)
    if args.workdir and not workdir.is_dir():
        print(f"qframe: error: --workdir {workdir}: no such directory", file=sys.stderr)
        return 2
    found = [e for e in entries(workdir) if not args.kind or e.kind in args.kind]
    now = time.time()
    if args.action == "list":
        if args.json:
            print(json.dumps({"workdir": str(workdir), "entries": [asdict(e) for e in found]}, indent=2))
            return 0
        print(f"caches of {workdir}: {len(found)} entries, {_human(sum(e.bytes for e in found))}")
        for e in found:
            print(f"  {e.kind:<10} {_human(e.bytes):>9}  {_age(now - e.modified):>13}  {e.what}  ({e.path})")
        if found:
            kinds = "|".join(KINDS)
            print(f"clear them with: qframe cache clear [--kind {kinds}] [--older-than DAYS]")
        return 0
    if args.older_than is not None:
        found = [e for e in found if now - e.modified > args.older_than * 86400]
    removed = [e for e in found if _remove(e)]
    busy = len(found) - len(removed)
    print(
        f"removed {len(removed)} entries ({_human(sum(e.bytes for e in removed))}) from {workdir}"
        + (f"; {busy} in use by a running job, kept" if busy else "")
    )
    return 0
