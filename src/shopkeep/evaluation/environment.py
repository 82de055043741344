"""The machine a measurement ran on, stated beside every timing (house rule 10)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

__all__ = ["cpu_model", "hardware_summary"]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (else the platform's processor string, else "unknown CPU")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def hardware_summary() -> str:
    """One line: CPU model, core count, Python version and platform."""
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()} ({sys.platform})"
