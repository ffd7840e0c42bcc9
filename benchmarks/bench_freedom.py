"""FREEDOMRecommender speed and memory: seconds per epoch, setup, one validation, peak memory.

Cases (each run in a fresh Python process, so that its peak memory is its own):

* ``lastfm2k``: MMRec's Last.fm 2K split (1,858 users, 1,425 items, 44,327 training
  interactions; text all-MiniLM-L6-v2 384-d + VGGish 128-d), MMRec's settings (10 neighbours,
  graph weights 0.9 text / 0.1 audio, ``edge_dropout`` 0.8, ``modality_loss_weight`` 1e-5,
  batch 2048, 64 factors), validated on its ``Y_val``.
* ``synthetic``: 100,000 items x 20,000 users x 500,000 interactions (popularity-skewed items,
  every user with at least one; ``bench_milk``'s generator), random 384-d + 128-d features,
  the same settings, validated on a random 10% of the interactions.

Columns:

* ``setup s``: what ``fit`` spends outside its epochs: the item kNN graphs (blocked exact top-k,
  no dense item x item matrix), the normalised user-item graph, the module;
* ``s/epoch``: median of skorch's epoch durations (the epoch's pruning draw and every batch's
  forward over the whole graph, loss and Adam step; validation excluded);
* ``valid s``: one validation as early stopping runs it after every epoch (one full-graph
  pass, then Recall@20 of every validated user over all items, training items excluded);
* ``peak MB``: the process's peak resident set size, inputs included (``inputs MB``: before
  fitting); ``cuda MB``: ``torch.cuda.max_memory_allocated`` (CUDA only).

With ``--mmrec PATH`` (an MMRec checkout, see ``freedom_vs_mmrec.py``), MMRec's own FREEDOM
seconds per training epoch on Last.fm 2K, one thread, are printed beside them.

    python benchmarks/bench_freedom.py [--data-root PATH] [--epochs 3] [--threads 1 2]
        [--device cpu] [--cases lastfm2k synthetic] [--quick] [--mmrec PATH] [--json PATH]

``--device auto`` adds a CUDA row per case when CUDA is available. Other processes on the
machine distort timings; ``others`` is the share of the CPU they used meanwhile.
``--json PATH`` also writes the result rows (one dict per case and device) to ``PATH``.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import RESULT_TAG, run_in_fresh_process  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LASTFM_TEXT, LASTFM_AUDIO = "all-MiniLM-L6-v2", "vggish"


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _case_data(case, data_root, quick):
    """``(X, Y_train, Y_val, modalities, weights)`` of a case."""
    if case == "lastfm2k":
        from skmm.datasets import load_mmrec

        data = load_mmrec(Path(data_root) / "lastfm2k", [LASTFM_TEXT, LASTFM_AUDIO])
        return data.X, data.Y_train, data.Y_val, data.modalities, [0.9, 0.1]
    from bench_milk import _synthetic
    import scipy.sparse as sp

    sizes = (10_000, 2_000, 50_000) if quick else (100_000, 20_000, 500_000)
    X, Y, modalities = _synthetic(*sizes)
    coo = Y.tocoo()
    held = np.random.default_rng(1).random(coo.nnz) < 0.1
    make = lambda sel: sp.csr_matrix((coo.data[sel], (coo.row[sel], coo.col[sel])),  # noqa: E731
                                     shape=Y.shape)
    return X, make(~held), make(held), modalities, [0.9, 0.1]


def worker(job):
    import torch

    from skmm.freedom import FREEDOMRecommender
    from skmm.metrics import evaluate_factors

    torch.set_num_threads(job["threads"])
    X, Y_train, Y_val, modalities, weights = _case_data(job["case"], job["data_root"],
                                                        job["quick"])
    inputs_mb = _peak_mb()
    device = job["device"]
    model = FREEDOMRecommender(modalities, modality_weights=weights, max_epochs=job["epochs"],
                               patience=job["epochs"], device=device, random_state=0)
    tic = time.perf_counter()
    model.fit(X, Y_train, y_val=Y_val)
    fit_s = time.perf_counter() - tic
    durations = np.array(model.history_[:, "dur"])
    # One validation, as the early-stopping callback runs it (on the training device).
    module = model._device_module(torch.device(device))
    tic = time.perf_counter()
    with torch.no_grad():
        U, V = module.final_factors()
        evaluate_factors(model.validation_interactions_, U, V, k=20, exclude=Y_train,
                         metrics=("recall",))
    valid_s = time.perf_counter() - tic
    n_valid = model.n_epochs_  # one validation per epoch ran inside fit
    out = {
        "case": job["case"], "items": Y_train.shape[0], "users": Y_train.shape[1],
        "pairs": int(model.n_pairs_), "epochs": int(model.n_epochs_),
        "setup s": fit_s - durations.sum() - n_valid * valid_s,
        "s/epoch": float(np.median(durations)), "valid s": valid_s,
        "inputs MB": inputs_mb, "peak MB": _peak_mb(), "device": model.device_,
        "threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        out["cuda MB"] = torch.cuda.max_memory_allocated() / 2**20
    print(RESULT_TAG + json.dumps(out))


def mmrec_epochs(checkout, data_root, epochs):
    """MMRec's FREEDOM s/epoch on Last.fm 2K through ``freedom_vs_mmrec.py``'s epoch worker."""
    import freedom_vs_mmrec as fvm

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="skmm_mmrec_") as workdir:
        src = fvm.prepare_mmrec(checkout, workdir)
        fvm.write_dataset(workdir, "lfm2k", *fvm.lastfm_dataset(data_root))
        return run_in_fresh_process(fvm.__file__, {"kind": "epoch", "src": str(src),
                                                   "epochs": epochs, "dropout": 0.8,
                                                   "reg_weight": 1e-5},
                                    timeout=1800, env=env)


COLUMNS = ["case", "items", "users", "pairs", "epochs", "setup s", "s/epoch", "valid s",
           "inputs MB", "peak MB", "cuda MB", "device", "threads", "others"]


def _row(r):
    cells = []
    for c in COLUMNS:
        v = r.get("others_cpu" if c == "others" else c, "")
        if c == "others" and isinstance(v, float):
            v = f"{v:.0%}"
        elif isinstance(v, float):
            v = f"{v:.3g}"
        cells.append(f"{v:>10}")
    return "  ".join(cells)


def main(argv=None):
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(ROOT))
        worker(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get(
        "SKMM_DATA", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or auto (cpu and cuda "
                                                        "when available)")
    parser.add_argument("--cases", nargs="+", default=["lastfm2k", "synthetic"],
                        choices=["lastfm2k", "synthetic"])
    parser.add_argument("--quick", action="store_true", help="a 10x smaller synthetic case")
    parser.add_argument("--mmrec", default=None, help="an MMRec checkout: MMRec's s/epoch")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the result rows to this JSON file")
    args = parser.parse_args(argv)

    import torch

    devices = ["cpu"] if args.device in ("cpu", "auto") else [args.device]
    if args.device == "auto" and torch.cuda.is_available():
        devices.append("cuda")
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        print("CUDA is not available here: CUDA rows skipped")
        devices = [d for d in devices if not d.startswith("cuda")] or ["cpu"]
    cases = list(args.cases)
    if "lastfm2k" in cases and not (Path(args.data_root) / "lastfm2k").is_dir():
        print(f"lastfm2k not found under {args.data_root}: skipped (set SKMM_DATA)")
        cases.remove("lastfm2k")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print("  ".join(f"{c:>10}" for c in COLUMNS))
    rows = []
    for case in cases:
        for device in devices:
            for threads in (args.threads if device == "cpu" else [args.threads[0]]):
                job = {"case": case, "device": device, "threads": threads, "epochs": args.epochs,
                       "quick": args.quick, "data_root": args.data_root}
                res = run_in_fresh_process(__file__, job, timeout=3600,
                                           env={**env, "OMP_NUM_THREADS": str(threads)})
                if "error" in res:
                    print(f"{case} on {device} ({threads} threads) failed: {res['error']}")
                else:
                    rows.append(res)
                    print(_row(res), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    if args.mmrec and "lastfm2k" in cases:
        res = mmrec_epochs(args.mmrec, args.data_root, args.epochs)
        if "error" in res:
            print("MMRec failed:", res["error"])
        else:
            seconds = res["mmrec_epoch_s"]
            print(f"MMRec FREEDOM, Last.fm 2K, 1 thread: s/epoch median "
                  f"{float(np.median(seconds)):.3g} ({', '.join(f'{s:.2f}' for s in seconds)}); "
                  f"one validation {res['mmrec_valid_s']:.3g} s (MMRec also evaluates the test "
                  f"split every epoch); others {res.get('others_cpu', float('nan')):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
