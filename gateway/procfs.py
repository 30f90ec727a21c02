"""Figures of a running process read from Linux's ``/proc``: CPU time, memory, threads, open files.

For the benchmarks (``make bench``), the soak run (``make soak``) and the fault tests
(``make faults``), which watch a gateway process from outside.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_mb(pid: int, field: str) -> float:
    """A memory figure (``VmRSS``, ``VmHWM``) of the process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    return status_mb(pid, "VmRSS")


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux 4.0+); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class PeakSampler:
    """Samples a process's VmRSS on a thread of its own; VmHWM alone would miss nothing, but may not be resettable."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.peak = rss_mb(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.hwm_reset = reset_peak(pid)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        peak = max(self.peak, rss_mb(self.pid))
        return max(peak, status_mb(self.pid, "VmHWM")) if self.hwm_reset else peak
