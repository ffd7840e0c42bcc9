"""skmm's FREEDOM side by side with MMRec's reference implementation (enoche/MMRec).

Nothing of MMRec is part of skmm: pass the path of a checkout. Its ``src`` folder is copied
into a temporary directory, the minimal run-fixes for current numpy / scipy / Python are
applied to that copy (the checkout itself is never modified, and no file is written outside
the temporary directory), and every MMRec job runs there in a fresh Python process.

(a) ``module``: on a tiny synthetic dataset (5 users, 7 items, image 7x4 and text 7x6
    features, k = 3), MMRec's ``FREEDOM`` and skmm's :class:`~skmm.freedom.FREEDOMModule`
    with identical parameters: maximum absolute differences of the item graph, the
    normalised user-item graph, the pruning weights, the re-normalised pruned graph, the
    forward pass, the loss and its gradients, and the full-ranking scores.
(b) ``epoch``: seconds per training epoch on Last.fm 2K (``lfm2k``: text
    all-MiniLM-L6-v2 as ``text_feat``, vggish as ``image_feat``), one torch thread: MMRec's
    ``Trainer._train_epoch`` after ``pre_epoch_processing``, and the seconds of one batch's
    forward + backward for both modules on the same batch and pruned graph.
    :func:`skmm_epoch_seconds` times ``FREEDOMRecommender``'s epochs.

    python benchmarks/freedom_vs_mmrec.py --mmrec PATH/TO/MMRec [--data-root PATH]
        [--part {module,epoch,all}] [--epochs 5]

MMRec's run-fixes (``shared/reference/freedom.md`` section 6; none changes its arithmetic):
``utils/dataset.py`` drops the raw-image imports (torchvision, PIL, lmdb; unused by FREEDOM),
``utils/metrics.py`` uses ``np.float64`` for the removed ``np.float``, and
``models/freedom.py`` fills the DOK matrix through ``A._dict`` (scipy removed ``_update``).
MMRec also needs pandas, matplotlib and pyyaml.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import RESULT_TAG, run_in_fresh_process  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# (file under src/, pattern, replacement): the minimal fixes, each must match.
FIXES = [
    ("utils/dataset.py", r"^from utils\.data_utils import .*\n", ""),
    ("utils/dataset.py", r"^import lmdb\n", ""),
    ("utils/metrics.py", r"np\.float(?![\w])", "np.float64"),
    ("models/freedom.py", r"A\._update\(data_dict\)", "A._dict.update(data_dict)"),
]

DATASET_YAML = """USER_ID_FIELD: userID
ITEM_ID_FIELD: itemID
filter_out_cod_start_users: True
inter_file_name: '{name}.inter'
vision_feature_file: 'image_feat.npy'
text_feature_file: 'text_feat.npy'
field_separator: "\\t"
"""

LASTFM_TEXT, LASTFM_IMAGE = "all-MiniLM-L6-v2", "vggish"


# ------------------------------------------------------------------ preparing MMRec

def prepare_mmrec(checkout, workdir):
    """Copy ``checkout/src`` to ``workdir/src`` and apply :data:`FIXES` to the copy."""
    src = Path(checkout) / "src"
    if not (src / "models" / "freedom.py").is_file():
        raise SystemExit(f"--mmrec {checkout}: no src/models/freedom.py; pass an MMRec checkout.")
    dst = Path(workdir) / "src"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("log", "saved", "__pycache__"))
    for rel, pattern, repl in FIXES:
        f = dst / rel
        text, n = re.subn(pattern, repl, f.read_text(), flags=re.M)
        if not n:
            raise SystemExit(f"MMRec fix not applicable: {pattern!r} not found in src/{rel}; "
                             f"this script knows MMRec at commit e775373.")
        f.write_text(text)
    return dst


def write_dataset(workdir, name, users, items, labels, image, text):
    """An MMRec-format folder ``workdir/data/<name>`` and its dataset config."""
    folder = Path(workdir) / "data" / name
    folder.mkdir(parents=True)
    with open(folder / f"{name}.inter", "w") as fh:
        fh.write("userID\titemID\tx_label\n")
        for u, i, x in zip(users, items, labels):
            fh.write(f"{u}\t{i}\t{x}\n")
    np.save(folder / "image_feat.npy", np.asarray(image, dtype=np.float32))
    np.save(folder / "text_feat.npy", np.asarray(text, dtype=np.float32))
    (Path(workdir) / "src" / "configs" / "dataset" / f"{name}.yaml").write_text(
        DATASET_YAML.format(name=name))


def synthetic_dataset(seed=0):
    """5 users, 7 items, 23 interactions (13 train, 5 validation, 5 test), image 7x4 and text
    7x6 features from ``default_rng(seed).normal``: the setup of the spec's section 2.4."""
    rng = np.random.default_rng(seed)
    pairs = rng.permutation(35)[:23]
    users, items = pairs // 7, pairs % 7
    # Every user and the last item must occur: MMRec's sizes are max id + 1.
    users[:5], items[5] = np.arange(5), 6
    keep = np.unique(users * 7 + items, return_index=True)[1]
    users, items = users[np.sort(keep)], items[np.sort(keep)]
    labels = np.array([0] * 13 + [1] * 5 + [2] * 5)[:len(users)]
    return users, items, labels, rng.normal(size=(7, 4)), rng.normal(size=(7, 6))


def lastfm_dataset(data_root):
    folder = Path(data_root) / "lastfm2k"
    table = np.loadtxt(folder / "lfm2k.inter", delimiter="\t", skiprows=1, dtype=np.int64)
    with open(folder / "lfm2k.inter") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    cols = [header.index(c) for c in ("userID", "itemID", "x_label")]
    users, items, labels = table[:, cols].T
    return (users, items, labels, np.load(folder / f"{LASTFM_IMAGE}.npy"),
            np.load(folder / f"{LASTFM_TEXT}.npy"))


# ------------------------------------------------------------------ inside MMRec

def _mmrec_model(src, name, overrides):
    """MMRec's FREEDOM built as ``quick_start`` builds it (seed 999), on the CPU."""
    os.chdir(src)
    sys.path.insert(0, str(src))
    from models.freedom import FREEDOM
    from utils.configurator import Config
    from utils.dataloader import EvalDataLoader, TrainDataLoader
    from utils.dataset import RecDataset
    from utils.utils import init_seed

    config = Config("FREEDOM", name, {"use_gpu": False, "seed": 999, **overrides})
    dataset = RecDataset(config)
    train_ds, valid_ds, _ = dataset.split()
    for part in (dataset, train_ds, valid_ds):
        str(part)  # quick_start logs them; that also sets the inter_num the loaders read
    train_data = TrainDataLoader(config, train_ds, batch_size=config["train_batch_size"],
                                 shuffle=True)
    valid_data = EvalDataLoader(config, valid_ds, additional_dataset=train_ds,
                                batch_size=config["eval_batch_size"])
    init_seed(config["seed"])
    train_data.pretrain_setup()
    return config, FREEDOM(config, train_data), train_data, valid_data


def _skmm_twin(model, knn_k, image_weight):
    """skmm's graphs and module from MMRec's model's data, with MMRec's parameters copied."""
    import torch

    from skmm.freedom import FREEDOMModule, item_knn_graph, user_item_adjacency

    v, t = model.v_feat.cpu().numpy(), model.t_feat.cpu().numpy()
    R = model.interaction_matrix.tocsr()  # users x items
    M = item_knn_graph(np.hstack([v, t]), [v.shape[1], t.shape[1]], knn_k,
                       weights=[image_weight, 1 - image_weight])
    A = user_item_adjacency(R.T)
    module = FREEDOMModule(model.n_users, model.n_items, [v, t], M, A,
                           n_factors=model.embedding_dim, n_item_layers=model.n_layers,
                           n_layers=model.n_ui_layers)
    pairs = [(module.user_embedding.weight, model.user_embedding.weight),
             (module.item_id_embedding.weight, model.item_id_embedding.weight),
             (module.features[0], model.image_embedding.weight),
             (module.features[1], model.text_embedding.weight),
             (module.projections[0].weight, model.image_trs.weight),
             (module.projections[0].bias, model.image_trs.bias),
             (module.projections[1].weight, model.text_trs.weight),
             (module.projections[1].bias, model.text_trs.bias)]
    with torch.no_grad():
        for mine, theirs in pairs:
            mine.copy_(theirs)
    return module, R, pairs


def _max_diff(a, b):
    a = a.to_dense() if a.is_sparse else a
    b = b.to_dense() if b.is_sparse else b
    return float((a.detach().double() - b.detach().double()).abs().max())


def worker_module(job):
    """(a): identical parameters, every intermediate compared."""
    import torch

    from skmm.freedom import EdgePruner, user_item_adjacency

    torch.set_num_threads(1)
    knn_k, w, dropout, reg = 3, 0.1, 0.5, 0.1
    _, model, train_data, _ = _mmrec_model(
        job["src"], "synth", {"knn_k": knn_k, "mm_image_weight": w, "dropout": dropout,
                              "reg_weight": reg})
    module, R, pairs = _skmm_twin(model, knn_k, w)
    n_users, n_items = model.n_users, model.n_items
    out = {"n_users": n_users, "n_items": n_items, "n_train": int(R.nnz)}
    out["item_graph"] = _max_diff(module.item_graph, model.mm_adj)
    out["adjacency"] = _max_diff(module.adjacency, model.norm_adj)
    pruner = EdgePruner(R.T, edge_dropout=dropout)
    theirs = torch.sparse_coo_tensor(model.edge_indices, model.edge_values,
                                     (n_users, n_items))
    mine = torch.sparse_coo_tensor(torch.stack([pruner.users, pruner.items]),
                                   pruner.weights.float(), (n_users, n_items))
    out["edge_weights"] = _max_diff(mine, theirs)

    torch.manual_seed(0)
    model.pre_epoch_processing()  # MMRec's pruned graph for this epoch
    masked = model.masked_adj.coalesce()
    idx = masked.indices()
    upper = idx[0] < n_users
    kept_u, kept_i = idx[0, upper], idx[1, upper] - n_users
    out["kept_edges"] = [int(upper.sum()), pruner.n_keep]
    import scipy.sparse as sp

    Y_kept = sp.csr_matrix((np.ones(len(kept_u)), (kept_i.numpy(), kept_u.numpy())),
                           shape=(n_items, n_users))
    out["pruned_renormalised"] = _max_diff(user_item_adjacency(Y_kept), masked)

    theirs_full = model.forward(model.norm_adj)
    mine_full = module(module.adjacency)
    out["forward_full"] = max(_max_diff(a, b) for a, b in zip(mine_full, theirs_full))
    out["forward_pruned"] = max(_max_diff(a, b) for a, b in
                                zip(module(model.masked_adj), model.forward(model.masked_adj)))

    interaction = next(iter(train_data))  # MMRec's own batch, negatives included
    users, pos, neg = interaction[0], interaction[1], interaction[2]
    loss_theirs = model.calculate_loss(interaction)
    loss_mine = module.loss(module(model.masked_adj), users, pos, neg,
                            modality_loss_weight=reg)
    out["loss"] = [float(loss_mine), float(loss_theirs)]
    out["loss_diff"] = abs(float(loss_mine) - float(loss_theirs))
    loss_theirs.backward()
    loss_mine.backward()
    names = ["user_embedding", "item_id_embedding", "image_features", "text_features",
             "image_W", "image_b", "text_W", "text_b"]
    out["grad_diff"] = {n: _max_diff(a.grad, b.grad) for n, (a, b) in zip(names, pairs)}
    out["grad_scale"] = {n: float(b.grad.abs().max()) for n, (_, b) in zip(names, pairs)}

    with torch.no_grad():
        scores_theirs = model.full_sort_predict([torch.arange(n_users)])
        uf, itf = module.final_factors()
        out["scores"] = _max_diff(uf @ itf.T, scores_theirs)
    print(RESULT_TAG + json.dumps(out))


def _interleaved_medians(fns, repeats):
    """Median seconds of each function, their runs interleaved so load changes hit all."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def worker_epoch(job):
    """(b): MMRec's seconds per epoch and both modules' seconds per batch, one thread."""
    import torch

    torch.set_num_threads(1)
    config, model, train_data, valid_data = _mmrec_model(
        job["src"], "lfm2k", {"dropout": job["dropout"], "reg_weight": job["reg_weight"]})
    from common.trainer import Trainer

    # skmm's twin before training: MMRec's from_pretrained features share memory with
    # model.v_feat / t_feat, so training (reg_weight > 0) changes those in place.
    module, _, _ = _skmm_twin(model, config["knn_k"], config["mm_image_weight"])
    trainer = Trainer(config, model)
    out = {"n_users": model.n_users, "n_items": model.n_items,
           "n_train": int(model.interaction_matrix.nnz), "n_batches": len(train_data),
           "dropout": job["dropout"], "reg_weight": job["reg_weight"]}
    epochs = []
    for epoch in range(job["epochs"]):
        t0 = time.perf_counter()
        model.pre_epoch_processing()
        trainer._train_epoch(train_data, epoch)
        epochs.append(time.perf_counter() - t0)
    out["mmrec_epoch_s"] = epochs
    # The graphs on real data: rows whose kNN entries differ (ties broken differently, or
    # float32 rounding at the cut), and the largest difference of the normalised graph.
    diff = (module.item_graph.to_dense() - model.mm_adj.to_dense()).abs()
    out["item_graph_rows_differing"] = int((diff.max(dim=1).values > 1e-6).sum())
    out["adjacency_max_diff"] = _max_diff(module.adjacency, model.norm_adj)
    t0 = time.perf_counter()
    trainer._valid_epoch(valid_data)
    out["mmrec_valid_s"] = time.perf_counter() - t0

    # One batch's forward + backward, same parameters (the initial ones), batch and pruned
    # graph for both.
    interaction = next(iter(train_data))
    users, pos, neg = interaction[0], interaction[1], interaction[2]

    def mmrec_step():
        model.zero_grad()
        model.calculate_loss(interaction).backward()

    def skmm_step():
        module.zero_grad()
        module.loss(module(model.masked_adj), users, pos, neg,
                    modality_loss_weight=job["reg_weight"]).backward()

    for fn in (mmrec_step, skmm_step):  # warm up
        fn()
    out["mmrec_batch_s"], out["skmm_batch_s"] = _interleaved_medians([mmrec_step, skmm_step],
                                                                     30)
    print(RESULT_TAG + json.dumps(out))


# ------------------------------------------------------------------ skmm's side

def skmm_epoch_seconds(X, Y_train, modalities, *, epochs, seed=0, edge_dropout=0.8,
                       modality_loss_weight=1e-5, image_weight=0.1, batch_size=2048):
    """Seconds per training epoch of :class:`~skmm.FREEDOMRecommender` on ``(X, Y_train)``.

    ``epochs`` epochs without validation (as MMRec's ``_train_epoch`` is timed without its
    evaluations), read off skorch's epoch timer: the epoch's pruning draw, the shuffle and
    negatives, and per batch the forward over the whole graph, the loss and an Adam step.
    ``X`` holds (image, text) blocks, weighted ``(image_weight, 1 - image_weight)``.
    """
    from skmm.freedom import FREEDOMRecommender

    model = FREEDOMRecommender(modalities, modality_weights=[image_weight, 1 - image_weight],
                               edge_dropout=edge_dropout,
                               modality_loss_weight=modality_loss_weight,
                               batch_size=batch_size, max_epochs=epochs, validation_fraction=0.0,
                               device="cpu", random_state=seed)
    model.fit(X, Y_train)
    return [float(s) for s in model.history_[:, "dur"]]


def worker_skmm_epoch(job):
    import torch

    from skmm.datasets import load_mmrec

    torch.set_num_threads(1)
    data = load_mmrec(job["data"], [LASTFM_IMAGE, LASTFM_TEXT])
    seconds = skmm_epoch_seconds(data.X, data.Y_train, data.modalities, epochs=job["epochs"],
                                 edge_dropout=job["dropout"],
                                 modality_loss_weight=job["reg_weight"])
    print(RESULT_TAG + json.dumps({"skmm_epoch_s": seconds}))


# ------------------------------------------------------------------ driver

def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        job = json.loads(sys.argv[2])
        sys.path.insert(0, str(ROOT))
        {"module": worker_module, "epoch": worker_epoch,
         "skmm_epoch": worker_skmm_epoch}[job["kind"]](job)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mmrec", required=True, help="path of an MMRec checkout")
    parser.add_argument("--data-root", default=os.environ.get("SKMM_DATA",
                                                              str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--part", choices=["module", "epoch", "all"], default="all")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dropout", type=float, default=0.8)
    parser.add_argument("--reg-weight", type=float, default=1e-5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="skmm_mmrec_") as workdir:
        src = prepare_mmrec(args.mmrec, workdir)
        if args.part in ("module", "all"):
            write_dataset(workdir, "synth", *synthetic_dataset())
            report_module(run_in_fresh_process(__file__, {"kind": "module", "src": str(src)},
                                               timeout=600, env=env))
        if args.part in ("epoch", "all"):
            write_dataset(workdir, "lfm2k", *lastfm_dataset(args.data_root))
            job = {"kind": "epoch", "src": str(src), "epochs": args.epochs,
                   "dropout": args.dropout, "reg_weight": args.reg_weight}
            mmrec = run_in_fresh_process(__file__, job, timeout=1800, env=env)
            skmm = run_in_fresh_process(
                __file__, {**job, "kind": "skmm_epoch",
                           "data": str(Path(args.data_root) / "lastfm2k")},
                timeout=1800, env=env)
            print(f"(b) Last.fm 2K, dropout {args.dropout}, reg_weight {args.reg_weight}, "
                  f"one torch thread")
            report_epoch(mmrec, skmm)


def _epoch_line(label, seconds):
    return (f"   {label} train s/epoch: median {statistics.median(seconds):.3f} "
            f"({', '.join(f'{s:.2f}' for s in seconds)})")


def report_module(res):
    print("(a) MMRec FREEDOM vs skmm FREEDOMModule, identical parameters, tiny synthetic "
          "data: max |difference|")
    if "error" in res:
        print("   failed:", res["error"])
        return
    for key in ("item_graph", "adjacency", "edge_weights", "pruned_renormalised",
                "forward_full", "forward_pruned", "loss_diff", "scores"):
        print(f"   {key:22s} {res[key]:.3g}")
    print(f"   kept edges (MMRec, skmm K) {res['kept_edges']}; loss (skmm, MMRec) "
          f"{res['loss']}")
    for name, diff in res["grad_diff"].items():
        print(f"   grad {name:17s} {diff:.3g} (largest |grad| {res['grad_scale'][name]:.3g})")


def report_epoch(mmrec, skmm):
    if "error" in mmrec:
        print("   MMRec failed:", mmrec["error"])
    else:
        print(f"   {mmrec['n_users']} users, {mmrec['n_items']} items, {mmrec['n_train']} train "
              f"edges, {mmrec['n_batches']} batches per epoch; other processes used "
              f"{mmrec.get('others_cpu', float('nan')):.0%} of the CPU")
        print(_epoch_line("MMRec", mmrec["mmrec_epoch_s"])
              + f"; one validation {mmrec['mmrec_valid_s']:.3f} s")
        print(f"   graphs: {mmrec['item_graph_rows_differing']} of {mmrec['n_items']} item-graph "
              f"rows differ from MMRec's; normalised user-item graph max |diff| "
              f"{mmrec['adjacency_max_diff']:.3g}")
        print(f"   one batch forward+backward: MMRec {mmrec['mmrec_batch_s'] * 1e3:.1f} ms, "
              f"skmm {mmrec['skmm_batch_s'] * 1e3:.1f} ms")
    if "error" in skmm:
        print("   skmm failed:", skmm["error"])
    else:
        print(_epoch_line("skmm ", skmm["skmm_epoch_s"]))


if __name__ == "__main__":
    main()
