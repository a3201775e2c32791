"""Whether a recorded process still runs."""

import os
import subprocess
import sys

from grapepose.utils.process import process_alive, this_host


def test_process_alive():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert process_alive(os.getpid()) and process_alive(os.getpid(), this_host())
    assert not process_alive(gone.pid)
    assert process_alive(gone.pid, "another-machine")  # cannot be checked from here: counts as alive
