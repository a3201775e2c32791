"""Whether a process recorded by an earlier run (a lock, a temporary folder) still runs."""

from __future__ import annotations

import os
import socket

__all__ = ["process_alive", "this_host"]


def this_host() -> str:
    """This machine's name, recorded beside a pid: a pid means nothing on another machine."""
    return socket.gethostname()


def process_alive(pid: int, host: str | None = None) -> bool:
    """True unless process `pid` on `host` (default: this machine) is known to be gone.

    A process on another machine cannot be checked and counts as alive.
    """
    if host is not None and host != this_host():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True
