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
import functools


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim from the C library this process already runs on (no search of the system's
    libraries); None where it has none (musl, macOS): nothing to trim there."""
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


def release_freed_memory() -> None:
    """Return the heap's free memory in every arena to the OS where the C library can (glibc)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
