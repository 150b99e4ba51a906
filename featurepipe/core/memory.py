"""The memory available now, for code that chooses between an in-memory and a slower path."""


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``), or a large number when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 50
