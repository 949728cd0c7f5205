"""How much memory the machine has free, handing freed memory back to it, and memory sizes in words."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def readable_size(size: int) -> str:
    """A byte count for a message: ``"3.2 GB"``, or ``"420.0 MB"`` below a tenth of a gigabyte."""
    return f"{size / 1e9:,.1f} GB" if size >= 1e8 else f"{size / 1e6:,.1f} MB"


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, if it is glibc (the one with ``malloc_trim``)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_freed_memory() -> None:
    """Give the memory that freed arrays left in the C heap back to the system (glibc's ``malloc_trim``).

    glibc keeps freed heap memory resident for reuse, and once a large block has been freed it serves
    blocks of up to 32 MB from the heap rather than from their own mappings; so after a scan's network
    stage the process keeps hundreds of MB of freed tensors resident, on top of what the next stage
    allocates. Called before a scan's outputs, it brings the peak of a whole ``medseg infer`` run on a
    512 x 512 x 200 CT from 1.45-1.76 GB to 1.34 GB (benchmarks/RESULTS.md). Without glibc (macOS,
    musl) it does nothing.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
