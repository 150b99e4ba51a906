"""What a run happened on -- CPU, cores, memory, load, library versions -- for benchmark headers and reports."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo, or ``platform.processor()`` where there is none."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor())


def describe() -> dict:
    """CPU model, cores, memory (GiB), load average, Python and the versions of the libraries features use."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("featurepipe", "numpy", "scipy", "scikit-learn", "scikit-image", "opencv-python-headless", "zarr"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": round(memory, 1) if memory else None,
            "load": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(), **versions}
