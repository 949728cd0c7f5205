"""``release_freed_memory`` gives the heap memory that freed arrays left resident back to the system.

glibc keeps freed blocks in the middle of its heap resident; after a scan's network stage those are
hundreds of MB that the outputs stage would otherwise add to. Run in a fresh interpreter, whose heap
holds nothing else.
"""

import subprocess
import sys

import pytest

from medseg.memory import _libc

HOLES = """
import numpy as np, psutil
from medseg.memory import release_freed_memory
process = psutil.Process()
np.ones(16 * 2**20 // 8)  # freed at once: glibc now serves blocks of up to 16 MB from its heap
blocks, pins = [], []
for _ in range(40):  # 40 blocks of 8 MB, each followed by a small array that stays, so the heap cannot shrink
    blocks.append(np.ones(8 * 2**20 // 8))
    pins.append(np.ones(10_000))
del blocks
resident = process.memory_info().rss
release_freed_memory()
print((resident - process.memory_info().rss) / 2**20)
"""


@pytest.mark.skipif(_libc() is None, reason="malloc_trim is glibc's")
def test_freed_holes_in_the_heap_are_given_back():
    given_back = float(subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True, check=True).stdout)
    assert given_back > 250  # of the 320 MB freed
