"""Handing freed heap memory back to the OS between the chunks of a long feature pass.

glibc keeps what a thread frees in that thread's arena for reuse. The side features of a chunk of 4,096
frames allocate and free hundreds of MB of temporaries on torch's and numba's threads, and the arenas
kept about 3.5 KB per frame of it (0.64 GB over 100,000 interference frames, 1.4 GB over 400,000): on
1,800,000 frames that, beside the frames themselves, ran a 24 GiB box out of memory. Trimming after
every such chunk keeps it at 0.13 GB over 100,000 frames, in the same time (docs/research.md, "Session
25"). Not after every chunk of the trunk's features: those keep little (+0.05 GB over 30,000 frames),
and a trim walks the whole heap, which slowed a 1.8M-frame pass by a third."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim") if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_freed_memory() -> None:
    """Return the heap's free memory in every arena to the OS where the C library can (glibc)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
