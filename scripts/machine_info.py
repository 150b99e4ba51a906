"""The CPU a benchmark ran on, for the header of its output."""
import platform
from pathlib import Path


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo, or ``platform.processor()`` where there is none."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor())
