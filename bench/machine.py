"""The machine a run measured: cores, memory, CPU model, kernel, and the versions of what
the figures depend on (Python, Docker Engine, Redis, Traefik)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path


def _first(pattern: str, text: str) -> str:
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1).strip() if found else "?"


def _version(command: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return _first(pattern, out)


def describe(docker_version: str = "?") -> dict[str, str]:
    """What BENCHMARKS.md says of the machine."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        cpuinfo = meminfo = ""
    mem_kib = _first(r"^MemTotal:\s+(\d+)", meminfo)
    memory = f"{int(mem_kib) / 1024 / 1024:.1f} GiB" if mem_kib.isdigit() else "?"
    return {
        "cores": str(len(os.sched_getaffinity(0))),
        "memory": memory,
        "cpu": _first(r"^model name\s*:\s*(.+)$", cpuinfo),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker engine": docker_version,
        "redis": _version(["redis-server", "--version"], r"v=(\S+)"),
        "traefik": _version(["traefik", "version"], r"Version:\s+(\S+)"),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
