"""The CUDA tests and every device-aware benchmark, on the CPU and on CUDA, in one run.

Steps, in order (``--dry-run`` lists them with their commands and runs nothing):

1. ``pytest -m cuda tests``: the CUDA tests (``tests/test_cuda.py``; they skip without a
   device);
2. each benchmark that takes a device, once with ``--device cpu`` and once with
   ``--device cuda``: ``bench_featprop.py`` (the ``skmm`` method only: the dense recipe and
   PyG have no device here), ``bench_featprop_memmap.py``, ``bench_ranking.py``,
   ``bench_milk.py``, ``bench_freedom.py``.

At the end it prints one table, a row per (benchmark, case, figure) with the CPU figure, the
CUDA figure and the CUDA speed-up (CPU seconds / CUDA seconds; for rates such as pairs/s,
CUDA / CPU), and writes it to ``summary.txt`` and ``summary.json`` in the output folder,
beside every step's raw output (``NN-step.txt``) and result rows (``NN-step.json``).

Without a CUDA device (``torch.cuda.is_available()`` false, e.g. the CPU build of torch) it
says so at the start, runs the CPU steps only and leaves the CUDA column empty; with
``--require-cuda`` it stops there instead, with exit status 2. The exit status is 1 if any
step failed.

Sizes (``--size``): ``standard`` (default) is meant to take under about 8 minutes on one
H200 with 16 CPU cores (an estimate: not yet measured on such a machine): FeatProp's full
cases, out-of-core FeatProp on 500k items, ranking at 10k x 100k and 100k x 1M, MILK and
FREEDOM at their ``--quick`` sizes (Last.fm 2K included where the data is found).
``smoke`` is the smallest run of every step (a check that the command works, not a
measurement); ``full`` runs every benchmark at its full size (far longer on the CPU side).

    python benchmarks/run_gpu.py [--size standard|smoke|full] [--out DIR] [--threads N]
        [--data-root PATH] [--benchmarks featprop featprop_memmap ranking milk freedom]
        [--skip-tests] [--require-cuda] [--dry-run]

The output folder is new: by default ``bench-gpu-YYYYMMDD-HHMMSS`` in the current folder
(suffixed ``-2``, ``-3``, ... if that exists); a folder given with ``--out`` must not exist
or be empty, so no earlier results are overwritten. Not run here: ``bench_graph.py`` (the
co-interaction graph is built on the CPU only), ``bench_graph_imputers.py`` (skmm's graph
imputers against the official dense CPU recipes; no ``--device`` option yet),
``freedom_vs_mmrec.py`` and ``vbpr_vs_cornac.py`` (comparisons with other libraries' CPU
code, which need their checkouts or packages), ``milk_lastfm.py`` and
``vbpr_lastfm_references.py`` (accuracy reproductions, not speed).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEVICES = ("cpu", "cuda")
BENCHMARKS = ("featprop", "featprop_memmap", "ranking", "milk", "freedom")
SIZES = ("standard", "smoke", "full")
CACHE = "<temporary folder>"  # replaced by a folder removed at the end of the run
# How bench_featprop / bench_ranking ("FAILED") and bench_milk / bench_freedom ("failed:") say
# that a case's worker failed.
CASE_FAILED = re.compile(r"\bFAILED\b|\bfailed: ")

# (figure label, result key, scale, "time" or "rate"): the figures the summary compares.
FIGURES = {
    "featprop": [("total s", "total_s", 1, "time"), ("graph build s", "build_s", 1, "time"),
                 ("propagate s", "prop_s", 1, "time"),
                 ("ms/step", "per_step_s", 1e3, "time")],
    "featprop_memmap": [("total s", "total_s", 1, "time"), ("graph build s", "graph_s", 1, "time"),
                        ("propagate s", "propagate_s", 1, "time"),
                        ("scan s", "scan_s", 1, "time"), ("write s", "write_s", 1, "time")],
    "ranking": [("time s", "blocked_s", 1, "time"), ("GMAC/s", "gmacs", 1, "rate")],
    "milk": [("pairs/s", "pairs/s", 1, "rate"), ("s/epoch", "s/epoch", 1, "time"),
             ("rank s", "rank s", 1, "time"), ("score s", "score s", 1, "time"),
             ("valid s", "valid s", 1, "time")],
    "freedom": [("setup s", "setup s", 1, "time"), ("s/epoch", "s/epoch", 1, "time"),
                ("valid s", "valid s", 1, "time")],
}


def benchmark_args(name, size, threads, data_root):
    """The command-line arguments of one benchmark (device and --json are added per step)."""
    root = [] if data_root is None else ["--data-root", str(data_root)]
    if name == "featprop":
        # Only skmm's imputer has a device; the machine is assumed quiet (no waiting). Both
        # devices share one input cache (the 1M-item graph takes a while to generate).
        args = ["--methods", "skmm", "--wait-quiet", "0", "--cache-dir", CACHE] + root
        return args + (["--cases", "baby-384d-30%"] if size == "smoke" else [])
    if name == "featprop_memmap":
        # (items, users, interactions, items of the in-memory comparison); full: its defaults.
        sizes = {"smoke": (50_000, 25_000, 500_000, 10_000),
                 "standard": (500_000, 250_000, 5_000_000, 100_000)}
        if size not in sizes:
            return []
        n_items, n_users, nnz, small = sizes[size]
        return ["--n-items", str(n_items), "--n-users", str(n_users), "--n-interactions",
                str(nnz), "--check-small", str(small)]
    if name == "ranking":
        cases = {"smoke": ["small"], "standard": ["small", "full"], "full": ["small", "full"]}
        # faiss (CPU-only) is compared with skmm by bench_ranking itself; here the figures
        # compared are skmm's on the two devices.
        return ["--threads", str(threads), "--no-faiss", "--cases", *cases[size]]
    if name == "milk":
        args = ["--threads", str(threads)] + root
        if size == "smoke":
            return args + ["--quick", "--epochs", "1"]
        return args + (["--quick"] if size == "standard" else [])
    if name == "freedom":
        args = ["--threads", str(threads)] + root
        if size == "smoke":
            return args + ["--quick", "--epochs", "1", "--cases", "synthetic"]
        return args + (["--quick"] if size == "standard" else [])
    raise ValueError(name)


def plan(size, threads, data_root, benchmarks, skip_tests):
    """The steps: dicts with ``name``, ``benchmark`` (None for the tests), ``device``, ``argv``
    (without the interpreter and the --json file)."""
    steps = []
    if not skip_tests:
        steps.append({"name": "cuda-tests", "benchmark": None, "device": "cuda",
                      "argv": ["-m", "pytest", "-m", "cuda", "-q", "-rs", "-p",
                               "no:cacheprovider", str(ROOT / "tests")]})
    for name in benchmarks:
        script = str(HERE / f"bench_{name}.py")
        for device in DEVICES:
            steps.append({"name": f"{name}-{device}", "benchmark": name, "device": device,
                          "argv": [script, "--device", device,
                                   *benchmark_args(name, size, threads, data_root)]})
    return steps


def new_folder(out):
    """Create the output folder: ``out`` if it is new or empty, else stop; by default a new,
    time-stamped folder beside the current one's files, never an existing one."""
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            sys.exit(f"--out {path}: exists and is not an empty folder; choose a new one")
        path.mkdir(parents=True, exist_ok=True)
        return path
    stem = Path(time.strftime("bench-gpu-%Y%m%d-%H%M%S"))
    for i in range(1, 1000):
        path = stem if i == 1 else Path(f"{stem}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    sys.exit(f"no new folder name free beside {stem}")


def run_step(argv, log_path, env, timeout):
    """Run ``python argv``, echoing its output and writing it to ``log_path``; the exit
    status (None if it ran past ``timeout`` seconds and was stopped)."""
    with open(log_path, "w") as log:
        log.write("$ " + " ".join([sys.executable, *argv]) + "\n")
        proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        stopped = []
        timer = threading.Timer(timeout, lambda: (stopped.append(True), proc.kill()))
        timer.start()
        try:
            for line in proc.stdout:
                sys.stdout.write("  | " + line)
                sys.stdout.flush()
                log.write(line)
            rc = proc.wait()
        finally:
            timer.cancel()
        if stopped:
            log.write(f"\n[stopped after {timeout} s]\n")
            return None
        return rc


def summary_rows(results):
    """``[(benchmark, case, figure, cpu, cuda, speed-up)]`` from the steps' result rows."""
    out = []
    for bench in BENCHMARKS:
        per_device = {d: results.get((bench, d)) for d in DEVICES}
        if per_device["cpu"] is None and per_device["cuda"] is None:
            continue
        cases = {}
        for device, rows in per_device.items():
            for row in rows or []:
                if bench == "featprop" and row.get("method") != "skmm":
                    continue
                cases.setdefault(str(row.get("case", "?")), {})[device] = row
        for case, by_device in cases.items():
            for label, key, scale, kind in FIGURES[bench]:
                cpu, cuda = (by_device.get(d, {}).get(key) for d in DEVICES)
                cpu = None if cpu is None else cpu * scale
                cuda = None if cuda is None else cuda * scale
                if cpu is None and cuda is None:
                    continue
                ratio = None
                if cpu and cuda:
                    ratio = cpu / cuda if kind == "time" else cuda / cpu
                out.append((bench, case, label, cpu, cuda, ratio))
    return out


def format_summary(rows, tests_line, has_cuda):
    def num(v):
        return "-" if v is None else f"{v:.3g}"

    lines = [f"{'benchmark':<17}{'case':<24}{'figure':<15}{'CPU':>10}{'CUDA':>10}"
             f"{'CUDA speed-up':>15}"]
    for bench, case, label, cpu, cuda, ratio in rows:
        lines.append(f"{bench:<17}{case:<24}{label:<15}{num(cpu):>10}{num(cuda):>10}"
                     f"{(num(ratio) + 'x') if ratio else '-':>15}")
    lines.append("speed-up: CPU seconds / CUDA seconds (for rates: CUDA / CPU).")
    if not has_cuda:
        lines.append("No CUDA device here: the CUDA column is empty (CPU steps only).")
    if tests_line:
        lines.append("CUDA tests: " + tests_line)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=SIZES, default="standard",
                        help="standard (default, ~8 min on an H200 + 16 cores, estimated), "
                             "smoke (smallest: checks the command) or full")
    parser.add_argument("--out", default=None,
                        help="a new or empty folder for the raw outputs (default: a new "
                             "bench-gpu-YYYYMMDD-HHMMSS folder here)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads of the benchmarks that take --threads "
                             "(default: all cores, %(default)s here)")
    parser.add_argument("--data-root", default=None,
                        help="the real data sets (default: the benchmarks' own: $SKMM_DATA "
                             "or ../shared/data)")
    parser.add_argument("--benchmarks", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--skip-tests", action="store_true", help="do not run pytest -m cuda")
    parser.add_argument("--require-cuda", action="store_true",
                        help="stop with exit status 2 where no CUDA device is available")
    parser.add_argument("--step-timeout", type=float, default=1800,
                        help="seconds allowed per step (default 1800)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the steps and their commands; run nothing")
    args = parser.parse_args(argv)

    steps = plan(args.size, args.threads, args.data_root, args.benchmarks, args.skip_tests)
    if args.dry_run:
        print(f"{len(steps)} steps (size {args.size}); CUDA steps run only where "
              f"torch.cuda.is_available():")
        for i, step in enumerate(steps, 1):
            print(f"{i:2d}. {step['name']} [{step['device']}]: python "
                  + " ".join(step["argv"]))
        return 0

    import torch

    has_cuda = torch.cuda.is_available()
    if has_cuda:
        print(f"CUDA device: {torch.cuda.get_device_name(0)} (torch {torch.__version__}, "
              f"CUDA {torch.version.cuda})", flush=True)
    else:
        print(f"No CUDA device is available (torch {torch.__version__}, CUDA build: "
              f"{torch.version.cuda or 'none'}): only the CPU steps run, the CUDA column "
              f"stays empty. On a GPU machine install a CUDA build of torch (see `make "
              f"bench-gpu`).", flush=True)
        if args.require_cuda:
            return 2
    out = new_folder(args.out)
    print(f"raw outputs in {out}/", flush=True)
    env = dict(os.environ)
    # The benchmarks measure this checkout's skmm, whatever is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    results, failed, tests_line, t_start = {}, [], None, time.monotonic()
    cache = tempfile.TemporaryDirectory(prefix="skmm-bench-gpu-")
    for i, step in enumerate(steps, 1):
        stem = out / f"{i:02d}-{step['name']}"
        if step["device"] == "cuda" and not has_cuda and step["benchmark"] is not None:
            print(f"\n== {i}/{len(steps)} {step['name']}: skipped, no CUDA device", flush=True)
            continue
        argv = [cache.name if a == CACHE else a for a in step["argv"]]
        if step["benchmark"] is not None:
            argv += ["--json", str(stem.with_suffix(".json").resolve())]
        print(f"\n== {i}/{len(steps)} {step['name']}", flush=True)
        tic = time.monotonic()
        rc = run_step(argv, stem.with_suffix(".txt"), env, args.step_timeout)
        print(f"== {step['name']}: "
              + ("stopped: ran past --step-timeout" if rc is None else f"exit status {rc}")
              + f", {time.monotonic() - tic:.0f} s", flush=True)
        log = stem.with_suffix(".txt").read_text()
        if step["benchmark"] is None:
            lines = log.strip().splitlines()
            tests_line = (lines[-1].strip("= ") if lines else "no output") + (
                "" if rc == 0 else f" (exit status {rc})")
            if rc != 0:
                failed.append(step["name"])
            continue
        rows = (json.loads(stem.with_suffix(".json").read_text())
                if stem.with_suffix(".json").exists() else [])
        results[(step["benchmark"], step["device"])] = rows
        # The benchmarks report a failed case (its worker process) and go on, exit status 0.
        if rc != 0 or not rows or CASE_FAILED.search(log):
            failed.append(step["name"] + ("" if rows else " (no results)"))

    cache.cleanup()
    rows = summary_rows(results)
    text = format_summary(rows, tests_line, has_cuda)
    total = time.monotonic() - t_start
    text += f"\nTotal {total:.0f} s; size {args.size}; {args.threads} CPU threads."
    if failed:
        text += "\nFailed: " + ", ".join(failed)
    print("\n" + "=" * 91 + "\n" + text)
    (out / "summary.txt").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps(
        {"rows": [dict(zip(("benchmark", "case", "figure", "cpu", "cuda", "speedup"), r))
                  for r in rows],
         "cuda": has_cuda, "tests": tests_line, "failed": failed, "size": args.size,
         "threads": args.threads, "seconds": total}, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
