"""On-disk cache of computed feature panels (Arrow IPC, memory-mapped on load).

The key hashes the market's content fingerprint with the feature and label
configuration, so a changed input or config misses the cache. Writes are
atomic (temp file + rename) under a file lock, so concurrent trials never read
a half-written file and compute a panel only once.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from filelock import FileLock

from qframe.core.atomic import atomic_path

#: bump when feature code changes its output, so old caches are not reused
CACHE_VERSION = "1"


def cache_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts."""
    blob = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=12).hexdigest()


@dataclass
class Cached:
    """Arrays read from the cache, backed by a read-only file mapping."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    mapping: mmap.mmap

    def release(self) -> None:
        """Drop the mapping's resident pages from this process (they are re-read from the page cache on access).

        Called once the data has been copied where it is needed, so peak memory does not hold both.
        """
        if hasattr(mmap, "MADV_DONTNEED"):
            self.mapping.madvise(mmap.MADV_DONTNEED)


class ArrayCache:
    """Named groups of numpy arrays stored as one Arrow IPC file per key."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.arrow"

    def lock(self, key: str) -> FileLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.directory / f"{key}.lock"))

    def load(self, key: str) -> Cached | None:
        """Arrays and metadata stored under ``key``, or None. Arrays are zero-copy views of a read-only mapping."""
        path = self.path(key)
        if not path.exists():
            return None
        with open(path, "rb") as f:
            mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        table = pa.ipc.open_file(pa.py_buffer(mapping)).read_all()
        meta = json.loads(table.schema.metadata[b"qframe"])
        arrays: dict[str, np.ndarray] = {}
        for name in table.column_names:
            column = table.column(name)
            # one chunk (as written) is used as is: combine_chunks would copy the memory-mapped data
            chunk = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
            if pa.types.is_fixed_size_list(chunk.type):
                width = chunk.type.list_size
                arrays[name] = chunk.values.to_numpy(zero_copy_only=True).reshape(-1, width)
            else:
                arrays[name] = chunk.to_numpy(zero_copy_only=True)
        return Cached(arrays, meta, mapping)

    def save(self, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """Store equal-length arrays (1-D, or 2-D as fixed-size lists) atomically."""
        columns = {}
        for name, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            if arr.ndim == 2:
                columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])
            else:
                columns[name] = pa.array(arr)
        table = pa.table(columns).replace_schema_metadata({"qframe": json.dumps(meta)})
        path = self.path(key)
        with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
            out.write_table(table)
        return path
