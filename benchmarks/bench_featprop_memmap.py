"""Out-of-core FeatProp: a catalogue whose feature matrix is read from a memory map.

Generates, under ``--workdir``, a float32 feature matrix of ``--n-items`` x ``--n-features`` as
a ``.npy`` file (whole rows set to NaN for ``--missing`` of the items, the FeatProp protocol)
and a synthetic power-law interaction matrix (``powerlaw_interactions`` of
``bench_featprop.py``), then runs, in a fresh process,

    X = np.load("X.npy", mmap_mode="r")
    FeatPropImputer(n_neighbors=20, n_iter=3, symmetric=True,
                    out_file="X_imputed.npy").fit_transform(X, Y)

and reports the graph build time and the peak memory at its end, the time of the rest (scan of
X, propagation, writing the result), the total, and the process's memory:

* ``peak RSS``: ``VmHWM``, the peak resident set size, pages of mapped files included;
* ``peak anon``: the peak of ``RssAnon`` (memory that is the process's own, not pages of the
  mapped files), sampled every 20 ms by a thread;
* ``peak file``: the peak of ``RssFile`` (pages of mapped files currently mapped), sampled.

Pages of a memory-mapped file count in the resident set while they are mapped. The imputer
reads ``X`` one block of rows at a time and unmaps each block's pages after use
(``madvise(MADV_DONTNEED)``): the data stay in the file and the kernel's page cache, which the
kernel reclaims under memory pressure, but not in the process. Without that, a pass over a
7.7 GB file leaves up to 7.7 GB mapped and counted in the process's RSS. The result is written
with plain file writes (nothing of it is mapped while it is written).

The defaults (5,000,000 items x 384, 2,500,000 users, 50,000,000 interactions) need about
18 GB of disk (``X``, the result, a 2.3 GB temporary file), about 5 GB of memory in the parent
while it generates the interactions (10 minutes on a busy 2-core machine) and about 6 GB in the
measured process; the graph build takes 3 minutes on a quiet 2-core machine.

After the timed run, the child checks the result block by block: the observed entries are
bit-identical to ``X`` and nothing is left missing. ``--check-small`` also compares the
memory-map path with the in-memory path on a 200,000-item slice of the data: equal bit for bit.

    python benchmarks/bench_featprop_memmap.py [--workdir DIR] [--keep] [--n-items N] ...

Files are deleted at the end unless ``--keep``; a ``--workdir`` with the inputs already there
(from ``--keep``) reuses them. ``--device cuda``: the imputer propagates on that device (the
graph build, the scan and the writing stay on the CPU). ``--json PATH`` also writes the
result row to ``PATH``.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULT_TAG = "RESULT "


def _status_kb(*keys):
    out = dict.fromkeys(keys, 0)
    with open("/proc/self/status") as fh:
        for line in fh:
            name = line.split(":", 1)[0]
            if name in out:
                out[name] = int(line.split()[1])
    return out


class MemorySampler:
    """Peaks of ``RssAnon`` and ``RssFile`` (MB), sampled every ``interval`` seconds."""

    def __init__(self, interval=0.02):
        self.interval, self.anon, self.file = interval, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            s = _status_kb("RssAnon", "RssFile")
            self.anon = max(self.anon, s["RssAnon"] / 1024)
            self.file = max(self.file, s["RssFile"] / 1024)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _hwm_mb():
    return _status_kb("VmHWM")["VmHWM"] / 1024


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------

def generate(workdir, n_items, n_users, n_interactions, n_features, missing, seed=0):
    """Write ``Y.npz`` and ``X.npy`` (streamed in row blocks: never whole in memory)."""
    import scipy.sparse as sp

    sys.path.insert(0, str(HERE))
    from bench_featprop import graph_stats, powerlaw_interactions

    workdir = Path(workdir)
    y_path, x_path = workdir / "Y.npz", workdir / "X.npy"
    if not y_path.exists():
        tic = time.perf_counter()
        Y = powerlaw_interactions(n_items, n_users, n_interactions, seed=seed)
        sp.save_npz(y_path, Y, compressed=False)
        print(f"  interactions: {graph_stats(Y)}; generated in "
              f"{time.perf_counter() - tic:.0f} s", flush=True)
        del Y
    if not x_path.exists():
        tic = time.perf_counter()
        rng = np.random.default_rng(seed)
        gone = rng.random(n_items) < missing
        tmp = x_path.with_suffix(".partial")
        with open(tmp, "wb") as fh:
            np.lib.format.write_array_header_2_0(fh, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (n_items, n_features)})
            step = max(1, (32 << 20) // (4 * n_features))
            for s in range(0, n_items, step):
                block = rng.standard_normal((min(step, n_items - s), n_features),
                                            dtype=np.float32)
                block[gone[s:s + step]] = np.nan
                fh.write(block.tobytes())
        tmp.rename(x_path)
        print(f"  features: {n_items:,} x {n_features} float32 "
              f"({x_path.stat().st_size / 1e9:.1f} GB), {gone.mean():.1%} of the items missing "
              f"all features; written in {time.perf_counter() - tic:.0f} s", flush=True)
    return y_path, x_path


# ------------------------------------------------------------------------------------------
# The measured run (a fresh process)
# ------------------------------------------------------------------------------------------

def worker(job):
    import scipy.sparse as sp
    import torch

    import skmm._blockio as blockio
    import skmm.impute._base as base
    import skmm.impute._featprop as fp
    from skmm import FeatPropImputer

    workdir = Path(job["workdir"])
    Y = sp.load_npz(workdir / "Y.npz").tocsr()
    X = np.load(workdir / "X.npy", mmap_mode="r")
    out_file = workdir / "X_imputed.npy"
    res = {"threads": torch.get_num_threads(), "inputs_mb": _hwm_mb(),
           "inputs_file_mb": _status_kb("RssFile")["RssFile"] / 1024,
           "y_mb": (Y.data.nbytes + Y.indices.nbytes + Y.indptr.nbytes) / 1e6}

    phases = {}
    original = fp.cointeraction_graph

    def timed_graph(*args, **kwargs):
        tic = time.perf_counter()
        A = original(*args, **kwargs)
        phases["graph_s"] = time.perf_counter() - tic
        phases["graph_peak_mb"] = _hwm_mb()
        return A

    fp.cointeraction_graph = timed_graph
    # The imputers' scan (skmm.impute._base) and their result writer (skmm._blockio).
    original_scan, original_finish = base.scan_features, blockio.ResultWriter.finish

    def timed_scan(*args, **kwargs):
        tic = time.perf_counter()
        out = original_scan(*args, **kwargs)
        phases["scan_s"] = time.perf_counter() - tic
        return out

    def timed_finish(self):
        tic = time.perf_counter()
        out = original_finish(self)
        phases["write_s"] = time.perf_counter() - tic
        return out

    base.scan_features, blockio.ResultWriter.finish = timed_scan, timed_finish
    device = job.get("device", "cpu")
    if device.startswith("cuda"):
        torch.zeros(1, device=device)  # the CUDA context, outside the measured run
    imp = FeatPropImputer(n_neighbors=job["n_neighbors"], n_iter=job["n_iter"],
                          symmetric=job["symmetric"], column_batch_size=job["column_batch_size"],
                          device=device, out_file=out_file, verbose=True)
    with MemorySampler() as mem:
        tic = time.perf_counter()
        out = imp.fit_transform(X, Y)
        total = time.perf_counter() - tic
    res.update(total_s=total, peak_mb=_hwm_mb(), peak_anon_mb=mem.anon, peak_file_mb=mem.file,
               graph_nnz=int(imp.graph_.nnz), n_propagated=int(imp.n_propagated_),
               n_fallback=int(imp.n_fallback_), **phases)
    res["rest_s"] = total - res["graph_s"]
    res["propagate_s"] = res["rest_s"] - res["scan_s"] - res["write_s"]

    # Checks, after the measurement: observed entries bit-identical, nothing left missing.
    from skmm.impute._base import RowBlocks

    xs, os_ = RowBlocks(X, 64 << 20), RowBlocks(out, 64 << 20)
    identical = complete = True
    for s, e, xb in xs:
        ob = out[s:e]
        observed = ~np.isnan(xb)
        identical &= bool(np.array_equal(xb.view(np.uint32)[observed],
                                         ob.view(np.uint32)[observed]))
        complete &= not bool(np.isnan(ob).any())
        os_.release(s, e)
    res.update(observed_identical=identical, nothing_missing=complete,
               out_is_memmap=isinstance(out, np.memmap))
    return res


def small_check(job):
    """The memory-map path against the in-memory path on the first ``n`` items."""
    import scipy.sparse as sp

    from skmm import FeatPropImputer

    workdir, n = Path(job["workdir"]), job["n"]
    Y = sp.load_npz(workdir / "Y.npz").tocsr()[:n]
    X_map = np.load(workdir / "X.npy", mmap_mode="r")[:n]
    kw = dict(n_neighbors=job["n_neighbors"], n_iter=job["n_iter"], symmetric=job["symmetric"],
              device=job.get("device", "cpu"))
    tic = time.perf_counter()
    in_memory = FeatPropImputer(**kw).fit_transform(np.array(X_map), Y)
    t_mem = time.perf_counter() - tic
    tic = time.perf_counter()
    mapped = FeatPropImputer(out_file=workdir / "small_out.npy", column_batch_size=48,
                             **kw).fit_transform(X_map, Y)
    t_map = time.perf_counter() - tic
    equal = bool(np.array_equal(in_memory, mapped))
    os.remove(workdir / "small_out.npy")
    return {"n": n, "equal": equal, "in_memory_s": t_mem, "memmap_s": t_map}


def run_child(job, timeout=7200):
    cmd = [sys.executable, __file__, "--worker", json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if not line.startswith(RESULT_TAG):
            print("  | " + line, flush=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
    raise RuntimeError(f"worker failed (exit {proc.returncode}):\n" + "\n".join(tail))


def _loadavg():
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover
        return (float("nan"),) * 3


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        job = json.loads(sys.argv[2])
        out = small_check(job) if job.get("kind") == "small" else worker(job)
        print(RESULT_TAG + json.dumps(out), flush=True)
        return

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=None,
                        help="where the data and the result are written (default: a new "
                             "temporary folder under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the files at the end")
    parser.add_argument("--n-items", type=int, default=5_000_000)
    parser.add_argument("--n-users", type=int, default=2_500_000)
    parser.add_argument("--n-interactions", type=int, default=50_000_000)
    parser.add_argument("--n-features", type=int, default=384)
    parser.add_argument("--missing", type=float, default=0.3)
    parser.add_argument("--n-neighbors", type=int, default=20)
    parser.add_argument("--n-iter", type=int, default=3)
    parser.add_argument("--directed", action="store_true",
                        help="the paper's directed top-k graph (default: symmetric=True, as "
                             "in bench_featprop.py)")
    parser.add_argument("--column-batch-size", type=int, default=None)
    parser.add_argument("--check-small", type=int, default=200_000, metavar="N",
                        help="compare memory-map and in-memory results on the first N items "
                             "(0: skip)")
    parser.add_argument("--device", default="cpu",
                        help="where the imputer propagates (default cpu; e.g. cuda)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the result row to this JSON file")
    args = parser.parse_args()

    made = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="skmm-memmap-", dir="/tmp") if made
                   else args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    print(f"Out-of-core FeatProp benchmark: {args.n_items:,} items x {args.n_features} "
          f"float32 features from a memory map; {args.n_users:,} users, "
          f"{args.n_interactions:,} interactions; k={args.n_neighbors}, "
          f"{'directed' if args.directed else 'symmetric'} graph, {args.n_iter} steps; "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads, device {args.device}; workdir {workdir}", flush=True)
    try:
        import psutil

        vm = psutil.virtual_memory()
        print(f"machine memory {vm.total / 1e9:.1f} GB, available {vm.available / 1e9:.1f} GB; "
              f"free disk {shutil.disk_usage(workdir).free / 1e9:.0f} GB", flush=True)
    except ImportError:  # pragma: no cover
        pass
    try:
        tic = time.perf_counter()
        generate(workdir, args.n_items, args.n_users, args.n_interactions, args.n_features,
                 args.missing)
        print(f"inputs ready in {time.perf_counter() - tic:.0f} s", flush=True)
        job = dict(workdir=str(workdir), n_neighbors=args.n_neighbors, n_iter=args.n_iter,
                   symmetric=not args.directed, column_batch_size=args.column_batch_size,
                   device=args.device)
        load0 = _loadavg()
        res = run_child(job)
        load1 = _loadavg()
        x_gb = args.n_items * args.n_features * 4 / 1e9
        print(f"\nresults (load average before / after: {load0[0]:.1f} / {load1[0]:.1f} on "
              f"{os.cpu_count()} CPUs)")
        print(f"  X: {x_gb:.2f} GB on disk (memory map); result: {x_gb:.2f} GB written to "
              f"X_imputed.npy, returned as a read-only memory map: {res['out_is_memmap']}")
        print(f"  graph: {res['graph_nnz']:,} edges, built in {res['graph_s']:.1f} s; peak RSS "
              f"at its end {res['graph_peak_mb']:,.0f} MB (interactions loaded: "
              f"{res['y_mb']:,.0f} MB)")
        print(f"  scan of X (missing rows, column means): {res['scan_s']:.1f} s; propagation "
              f"(gathering the known rows of each column group, normalisation included): "
              f"{res['propagate_s']:.1f} s; writing the result file: {res['write_s']:.1f} s "
              f"({res['n_propagated']:,} entries propagated, {res['n_fallback']:,} took the "
              f"fallback)")
        print(f"  total fit_transform: {res['total_s']:.1f} s")
        print(f"  peak RSS (VmHWM, mapped file pages included): {res['peak_mb']:,.0f} MB; "
              f"peak anonymous memory (RssAnon, sampled): {res['peak_anon_mb']:,.0f} MB; peak "
              f"mapped file pages (RssFile, sampled): {res['peak_file_mb']:,.0f} MB; before "
              f"fit_transform: RSS {res['inputs_mb']:,.0f} MB, of which RssFile (the "
              f"libraries' code, mostly) {res['inputs_file_mb']:,.0f} MB")
        print(f"  observed entries bit-identical to X: {res['observed_identical']}; nothing left "
              f"missing: {res['nothing_missing']}")
        if args.check_small:
            small = run_child(dict(job, kind="small", n=min(args.check_small, args.n_items)))
            print(f"  memory-map path == in-memory path on the first {small['n']:,} items "
                  f"(column groups of 48): {small['equal']} (in memory {small['in_memory_s']:.1f}"
                  f" s, memory map {small['memmap_s']:.1f} s)")
            res["small_check"] = small
        if args.json:
            with open(args.json, "w") as fh:
                json.dump([{"case": f"{args.n_items}x{args.n_features}", "device": args.device,
                            **res}], fh, indent=1)
    finally:
        if not args.keep:
            for name in ("X.npy", "Y.npz", "X_imputed.npy", "X.partial", "small_out.npy"):
                (workdir / name).unlink(missing_ok=True)
            if made:
                shutil.rmtree(workdir, ignore_errors=True)
            print(f"removed the benchmark files under {workdir}")


if __name__ == "__main__":
    main()
