"""What the rest of the machine did while a benchmark ran (shared by the benchmark scripts)."""

import os
import resource


def cpu_busy_s():
    """Seconds of CPU time all processes of the machine have used (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot():
    """Machine-wide busy CPU seconds and this process's children's usage, for
    :func:`others_cpu_share`."""
    return cpu_busy_s(), resource.getrusage(resource.RUSAGE_CHILDREN)


def others_cpu_share(before, after, wall):
    """Share of the machine's CPU time that processes other than our children used between two
    :func:`cpu_snapshot` calls ``wall`` seconds apart; None where /proc/stat is unreadable."""
    (busy0, child0), (busy1, child1) = before, after
    if busy0 is None or busy1 is None:
        return None
    own = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    return max(busy1 - busy0 - own, 0.0) / (wall * (os.cpu_count() or 1))
