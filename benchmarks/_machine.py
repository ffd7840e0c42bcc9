"""The benchmarks' one harness: the data root, a job in a fresh process, its peak memory, and
what the rest of the machine did meanwhile."""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

RESULT_TAG = "RESULT "


def data_root(arg=None):
    """The folder of real datasets: ``arg``, else ``$SKMM_DATA``, else ``../shared/data``
    beside the repository (as the tests look for it)."""
    if arg:
        return Path(arg)
    if os.environ.get("SKMM_DATA"):
        return Path(os.environ["SKMM_DATA"])
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def peak_rss_mb():
    """This process's peak resident memory in MiB (Linux VmHWM; getrusage elsewhere).

    ``VmHWM`` belongs to the process's own address space; ``ru_maxrss``, used only where there
    is no ``/proc``, survives ``exec`` on Linux and so starts at the parent's size at fork time.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextmanager
def cache_folder(path=None, prefix="skmm-bench-"):
    """The folder a benchmark keeps its generated inputs in: ``path`` (created, kept
    afterwards), or a temporary folder removed at the end. Yields ``(folder, temporary)``."""
    if path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder, False
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp), True


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


def run_in_fresh_process(script, job, *, timeout, env=None, echo=False):
    """Run ``script --worker JSON(job)`` in a new Python process and return the dict it prints
    after :data:`RESULT_TAG`, plus ``others_cpu`` (the share of the machine's CPU time other
    processes used meanwhile) and ``load`` (the 1-minute load average before and after).

    A fresh process per job makes its peak memory its own. Failures come back as
    ``{"error": ...}`` with the end of the worker's output. ``echo``: print the worker's other
    output lines, indented.
    """
    cmd = [sys.executable, script, "--worker", json.dumps(job)]
    before, t0, load0 = cpu_snapshot(), time.monotonic(), os.getloadavg()[0]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    after, wall = cpu_snapshot(), time.monotonic() - t0
    if echo:
        for line in proc.stdout.splitlines():
            if not line.startswith(RESULT_TAG):
                print("  | " + line, flush=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            res = json.loads(line[len(RESULT_TAG):])
            others = others_cpu_share(before, after, wall)
            if others is not None:
                res["others_cpu"] = others
            res["load"] = (load0, os.getloadavg()[0])
            return res
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
