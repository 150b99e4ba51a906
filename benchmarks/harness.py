"""What every benchmark shares: its command line, its timings and the description of the machine they ran on.

Timings interleave the methods compared within every round, so that a shared, noisy machine slows them
alike, and keep each method's best round. The machine description (CPU, cores, memory, load, library
versions) goes into every benchmark's header or JSON. Scripts import this module as ``harness`` (Python
puts the script's folder, ``benchmarks/``, on the path); no script imports another script.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import threading
import time
import warnings
from pathlib import Path


# -- the command line --------------------------------------------------------------------------------------
def parser(doc: str, **flags) -> argparse.ArgumentParser:
    """An argument parser showing the script's docstring, with an option ``--name`` (underscores as
    hyphens) for each of ``flags``, typed and defaulted by its value: ``parser(__doc__, rows=2000, rounds=2)``."""
    made = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in flags.items():
        made.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return made


# -- timings -----------------------------------------------------------------------------------------------
def timed(function, *args, **kwargs) -> tuple:
    """``(function(*args, **kwargs), wall seconds)``."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def timed_rounds(methods: dict, rounds: int, after_round=None) -> dict[str, list[float]]:
    """Wall seconds of each zero-argument callable of ``methods`` in each of ``rounds`` rounds, the methods
    taking turns within a round; ``after_round(seconds_so_far)`` is called at the end of each."""
    seconds = {name: [] for name in methods}
    for _ in range(rounds):
        for name, run in methods.items():
            seconds[name].append(timed(run)[1])
        if after_round:
            after_round(seconds)
    return seconds


def best_times(methods: dict, rounds: int) -> dict[str, float]:
    """Best wall time of each zero-argument callable over ``rounds`` interleaved rounds."""
    return {name: min(values) for name, values in timed_rounds(methods, rounds).items()}


def fit_quietly(model, X, y):
    """``model.fit(X, y)`` without convergence warnings: a benchmark sets its own stopping rule."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


# -- the machine -------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo, or ``platform.processor()`` where there is none."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor() or "unknown CPU")


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


def cpu_and_cores() -> str:
    """``"<CPU model>, <n> cores"``: the machine in a header line."""
    return f"{cpu_model()}, {os.cpu_count()} cores"


def load_text() -> str:
    """The 1, 5 and 15 minute load averages: ``"0.52, 0.61, 0.70"``."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


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
