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


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants (Linux /proc; 0 where unreadable)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            pass
    return total


def run_measured(command: list[str]) -> dict:
    """Run ``command``: wall seconds, the peak resident memory of its whole process tree (MiB, sampled
    every 20 ms), its exit code and its output."""
    import subprocess
    import threading
    import time

    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0

    def sample():
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output = process.communicate()[0]
    sampler.join()
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": peak / 2**20, "exit": process.returncode,
            "output": output.strip()}
