"""Lines written while another thread silences C output on stderr reach stderr, whatever the timing.

Each case runs in a fresh interpreter whose stderr is a pipe, as in a pipelined ``medseg infer`` run
that a script reads: one thread holds descriptor 2 silenced (as around an ITK call) while another
writes its ``error:`` line. Before the lock, such a line went to ``/dev/null`` (the flaky
``test_wild_files`` failures), and two overlapping silenced calls could leave stderr silenced.
"""

import subprocess
import sys

RACE = """
import os, threading, time
from medseg.stderr import c_output_silenced, write_line

inside = threading.Event()

def silenced(pause):
    with c_output_silenced():
        inside.set()
        os.write(2, b"from C\\n")  # what ITK would print: never shown
        time.sleep(pause)

first = threading.Thread(target=silenced, args=(0.3,))
first.start()
inside.wait()
second = threading.Thread(target=silenced, args=(0.1,))
second.start()
write_line("error: written while silenced")
first.join(); second.join()
write_line("error: written after")
"""


def test_a_line_written_during_a_silenced_call_is_not_lost():
    done = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr.splitlines() == ["error: written while silenced", "error: written after"]
