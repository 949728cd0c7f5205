"""How much memory the machine has free, and memory sizes in words."""

from __future__ import annotations

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


def gigabytes(size: int) -> str:
    """A byte count in gigabytes for a message, e.g. ``"3.2 GB"``."""
    return f"{size / 1e9:.1f} GB"
