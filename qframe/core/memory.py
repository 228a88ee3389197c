"""Handing freed heap memory back to the operating system."""

from __future__ import annotations


def trim_heap() -> None:
    """Return the heap's free pages to the OS (glibc's ``malloc_trim``, every arena; nothing elsewhere).

    glibc keeps freed blocks below its mmap threshold (which grows up to 32 MB as large blocks are freed) resident
    for reuse: after a stage that allocates and frees many such blocks (the feature blocks of a cold run,
    LightGBM's sampling buffers), the rest of the run would stay hundreds of MB above what it holds.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
