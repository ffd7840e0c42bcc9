"""``python -m skmm reproduce imputers``: graph imputers x similarities against the mean."""

import csv
import dataclasses
import json

import numpy as np
import pytest

from skmm import reproduce as rp
from skmm.__main__ import main
from skmm.reproduce import _imputers

SEEDS = (1,)  # one seed, not 0: the rows are seeded by it, not by a default
RATES = (0.3, 0.7)
METHODS = ("mean", "neighmean", "multihop", "ppr")
SIMS = ("count", "cosine")
NAMES = ["modality_a", "modality_b"]


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def data():
    return rp.default_data(quick=True)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """One small run written to a folder: its rows and the folder."""
    out = tmp_path_factory.mktemp("imputers")
    rows = rp.reproduce_imputers(data, seeds=SEEDS, rates=RATES, imputers=METHODS,
                                 similarities=SIMS, out=out, progress=False)
    return rows, out


def test_rows_have_the_expected_keys_and_count(run):
    rows, out = run
    main = rows["imputers"]
    # Per (protocol, rate, seed): the mean once, each graph method once per similarity.
    assert len(main) == 2 * len(RATES) * len(SEEDS) * (1 + 3 * len(SIMS))
    keys = {(r["protocol"], r["rate"], r["method"], r["similarity"], r["seed"]) for r in main}
    expected = {(p, r, "mean", "-", s) for p in ("all", "one") for r in RATES for s in SEEDS}
    expected |= {(p, r, m, sim, s) for p in ("all", "one") for r in RATES for s in SEEDS
                 for m in METHODS[1:] for sim in SIMS}
    assert keys == expected
    columns = ["protocol", "rate", "method", "similarity", "seed",
               "centred_cosine modality_a", "centred_cosine modality_b", "mse modality_a",
               "mse modality_b", "mse_skill modality_a", "mse_skill modality_b", "choice",
               "choice_score", "seconds"]
    assert all(list(r) == columns for r in main)
    # Fixed methods choose nothing: the columns a model-selection imputer fills stay empty.
    assert all(r["choice"] == "" and np.isnan(r["choice_score"]) for r in main)
    assert [list(r) for r in read_csv(out / "imputers.csv")][0] == columns
    assert len(read_csv(out / "imputers.csv")) == len(main)
    homophily = rows["imputers_homophily"]
    assert {(r["similarity"], r["seed"]) for r in homophily} == {
        (s, seed) for s in SIMS for seed in SEEDS}
    for name in ("imputers.png", "imputers_summary.csv", "imputers_homophily.csv",
                 "imputers_homophily_summary.csv"):
        assert (out / name).is_file()
    summary = read_csv(out / "imputers_summary.csv")
    assert len(summary) == len(main) // len(SEEDS)
    assert summary[0]["protocol"] == "all" and summary[0]["rate"] == "30%"
    assert " ± " in summary[0]["centred_cosine modality_a"]


def test_mean_baseline_scores_exactly_zero_centred_cosine(run):
    means = [r for r in run[0]["imputers"] if r["method"] == "mean"]
    assert means and all(r[f"centred_cosine {n}"] == 0.0 for r in means for n in NAMES)
    assert all(r[f"mse_skill {n}"] == 0.0 for r in means for n in NAMES)
    # Its MSE is that of the observed column means, the reference of the graph methods.
    assert all(r[f"mse {n}"] > 0 for r in means for n in NAMES)


@pytest.mark.parametrize("protocol, method, similarity", [
    ("all", "multihop", "count"), ("one", "ppr", "cosine"), ("one", "neighmean", "count")])
def test_a_row_equals_an_independent_recomputation(run, data, protocol, method, similarity):
    from skmm.datasets import simulate_missing
    from skmm.impute import GraphImputer
    from skmm.metrics import imputation_score

    seed, rate = 1, 0.7
    key = (protocol, rate, method, similarity, seed)
    row, = [r for r in run[0]["imputers"]
            if (r["protocol"], r["rate"], r["method"], r["similarity"], r["seed"]) == key]
    X_miss, mask = simulate_missing(data.X, [64, 32], rate, mode=protocol, random_state=seed)
    if protocol == "one":  # each item lost exactly one block, never both
        assert not (mask[:, :64].any(axis=1) & mask[:, 64:].any(axis=1)).any()
    imputer = GraphImputer(method=method, similarity=similarity)
    X_imp = imputer.fit_transform(X_miss, data.Y_train)
    for b, (lo, hi) in enumerate(((0, 64), (64, 96))):
        hidden = mask[:, lo:hi]
        err = (X_imp[:, lo:hi].astype(np.float64) - data.X[:, lo:hi])[hidden]
        assert row[f"mse {NAMES[b]}"] == pytest.approx(np.mean(err ** 2), rel=1e-9)
        # The mean imputer's MSE on the same entries: the observed column means.
        centre = np.nanmean(X_miss[:, lo:hi].astype(np.float64), axis=0)
        centre = centre.astype(X_miss.dtype).astype(np.float64)
        base = ((centre - data.X[:, lo:hi].astype(np.float64))[hidden] ** 2).mean()
        assert row[f"mse_skill {NAMES[b]}"] == pytest.approx(1 - np.mean(err ** 2) / base,
                                                             rel=1e-9, abs=1e-12)
    cc = imputation_score(data.X, X_imp, X_miss, modalities=[64, 32],
                          multioutput="raw_values")
    assert [row[f"centred_cosine {n}"] for n in NAMES] == pytest.approx(cc, rel=1e-12)
    # The centred cosine by hand for the first block: per hidden row (a whole block is hidden
    # or not, under both protocols), centred on the observed column means as the mean imputer
    # fills them (float64 mean rounded to X's dtype, so that a row left to the fallback is
    # exactly the centre and counts 0).
    centre = np.nanmean(X_miss[:, :64].astype(np.float64), axis=0)
    centre = centre.astype(X_miss.dtype).astype(np.float64)
    rows = np.flatnonzero(mask[:, :64].any(axis=1))
    a = X_imp[rows, :64].astype(np.float64) - centre
    t = data.X[rows, :64].astype(np.float64) - centre
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(t, axis=1)
    cos = [(a[i] @ t[i]) / norms[i] if norms[i] > 0 else 0.0 for i in range(len(rows))]
    assert row["centred_cosine modality_a"] == pytest.approx(np.mean(cos), rel=1e-9)


def test_homophily_row_equals_an_independent_recomputation(run, data):
    from skmm.graph import cointeraction_graph

    row, = [r for r in run[0]["imputers_homophily"]
            if (r["similarity"], r["seed"]) == ("cosine", 1)]
    A = cointeraction_graph(data.Y_train, 20, similarity="cosine").tocoo()
    src, dst = A.row[A.row != A.col], A.col[A.row != A.col]
    for b, (lo, hi) in enumerate(((0, 64), (64, 96))):
        X = data.X[:, lo:hi].astype(np.float64)
        # The pooled mean of the edge endpoints, then a Pearson-type correlation over edges.
        mu = (X[src].sum(axis=0) + X[dst].sum(axis=0)) / (2 * src.size)
        xs, xd = X[src] - mu, X[dst] - mu
        h = (xs * xd).sum() / np.sqrt((xs ** 2).sum() * (xd ** 2).sum())
        assert row[f"homophily {NAMES[b]}"] == pytest.approx(h, rel=1e-9)
        assert row[f"edges {NAMES[b]}"] == src.size
        assert abs(row[f"null {NAMES[b]}"]) < 0.05  # shuffled features: about 0


CALLS = []


def counting(run, data, **args):
    CALLS.append((args["protocol"], args["rate"], args["method"], args["similarity"],
                  args["seed"]))
    return run(data, **args)


def test_resume_skips_written_rows(data, tmp_path):
    def experiments(seeds):
        made = rp.imputers_experiment(data, seeds=seeds, rates=(0.5,), imputers=("mean",
                                      "multihop"), similarities=("count",), protocol="all")
        return [dataclasses.replace(e, run=lambda d, _r=e.run, **a: counting(_r, d, **a))
                if e.name == "imputers" else e for e in made]

    CALLS.clear()
    first = rp.run_experiments(experiments((0,)), data, out=tmp_path, progress=False)
    assert len(CALLS) == 2
    CALLS.clear()
    both = rp.run_experiments(experiments((0, 1)), data, out=tmp_path, if_exists="resume",
                              progress=False)
    assert sorted(CALLS) == [("all", 0.5, "mean", "-", 1), ("all", 0.5, "multihop", "count", 1)]
    seed0 = [r for r in both["imputers"] if r["seed"] == 0]
    # Read back from the CSV, equal to what the first run returned (choice_score is NaN,
    # which equals nothing: compared apart).
    assert [json.dumps(r) for r in seed0] == [json.dumps(r) for r in first["imputers"]]
    assert len(both["imputers_homophily"]) == 2


class Chooser:
    """A stand-in for a model-selection imputer: the mean, with a recorded choice."""

    def fit_transform(self, X, y):
        from skmm.impute import BaselineImputer

        self.best_params_ = {"method": "multihop", "similarity": "cosine"}
        self.best_score_ = 0.25
        return BaselineImputer().fit_transform(X)

    def get_params(self, deep=False):
        return {}


def test_a_model_selection_imputer_fills_the_choice_columns(data, monkeypatch):
    entry = rp.ImputationMethod(lambda similarity, random_state: Chooser(), False, "CV")
    monkeypatch.setitem(_imputers.IMPUTATION_METHODS, "cv", entry)
    main, _ = rp.imputers_experiment(data, seeds=1, rates=(0.5,), imputers=("cv",),
                                     protocol="one")
    rows = rp.run_experiments([main], data, progress=False)["imputers"]
    assert [(r["method"], r["similarity"]) for r in rows] == [("cv", "-")]
    assert json.loads(rows[0]["choice"]) == {"method": "multihop", "similarity": "cosine"}
    assert rows[0]["choice_score"] == 0.25


# The "cv" entry's grid, written out: the test checks the registered one against it.
CV_SETTINGS = {"methods": ("neighmean", "multihop"), "similarities": ("count", "cosine", "jaccard"),
               "n_neighbors": (10, 20, 40), "n_iter": tuple(range(11)), "metric": "mse_skill",
               "n_repeats": 6, "fraction": 0.05}


@pytest.fixture(scope="module")
def cv_rows(data):
    main, _ = rp.imputers_experiment(data, seeds=(2,), rates=(0.3, 0.7), imputers=("mean", "cv"),
                                     protocol="both")
    return main, rp.run_experiments([main], data, progress=False)["imputers"]


def test_cv_is_registered_with_its_grid_and_not_run_by_default(data, cv_rows):
    assert _imputers.CV_GRID == CV_SETTINGS
    main, _ = rp.imputers_experiment(data, seeds=1, rates=(0.5,))
    assert main.config["imputers"] == ["mean", "neighmean", "multihop", "ppr", "heat"]
    assert "cv" in rp.OPTION_CHOICES["imputers"]["imputers"]
    # The configuration records the CV's parameters, block sizes included.
    params = cv_rows[0].config["estimators"]["cv/-"]
    assert params["modalities"] == [64, 32] and params["metric"] == "mse_skill"
    assert params["n_iter"] == list(range(11)) and params["mode"] == "modality"


@pytest.mark.parametrize("protocol, rate", [("all", 0.7), ("one", 0.3)])
def test_the_cv_row_is_an_independent_choice_and_its_refit(data, cv_rows, protocol, rate):
    from skmm.datasets import simulate_missing
    from skmm.impute import GraphImputer, GraphImputerCV
    from skmm.metrics import imputation_score

    seed = 2
    row, = [r for r in cv_rows[1] if (r["protocol"], r["rate"], r["method"]) ==
            (protocol, rate, "cv")]
    assert row["similarity"] == "-" and row["seed"] == seed
    X_miss, _ = simulate_missing(data.X, [64, 32], rate, mode=protocol, random_state=seed)
    cv = GraphImputerCV(methods=("neighmean", "multihop"),
                        similarities=("count", "cosine", "jaccard"), n_neighbors=(10, 20, 40),
                        n_iter=tuple(range(11)), modalities=[64, 32], mode="modality",
                        metric="mse_skill", n_repeats=6, fraction=0.05,
                        random_state=seed).fit(X_miss, data.Y_train)
    assert json.loads(row["choice"]) == cv.best_params_
    assert row["choice_score"] == cv.best_score_
    # The quality figures are those of a fresh GraphImputer with the chosen setting.
    X_imp = GraphImputer(**cv.best_params_).fit_transform(X_miss, data.Y_train)
    for metric in ("centred_cosine", "mse", "mse_skill"):
        scores = imputation_score(data.X, X_imp, X_miss, metric=metric, modalities=[64, 32],
                                  multioutput="raw_values")
        assert [row[f"{metric} {n}"] for n in NAMES] == pytest.approx(scores, rel=1e-12)
    # The mean is in the grid (0 steps: every missing entry takes the fallback), so the
    # choice's masked-recovery score is never below the mean's, 0.
    assert row["choice_score"] >= 0


def test_downstream_adds_ranking_columns(data):
    main, _ = rp.imputers_experiment(data, seeds=1, rates=(0.5,), imputers=("mean",),
                                     protocol="all", downstream="vbpr",
                                     model_params={"max_epochs": 1})
    row, = rp.run_experiments([main], data, progress=False)["imputers"]
    assert 0 <= row["recall@20"] <= 1 and 0 <= row["ndcg@20"] <= 1
    assert main.config["model_params"]["max_epochs"] == 1


def test_similarity_choices_are_the_graph_modules():
    from skmm.graph import SIMILARITIES

    assert _imputers.SIMILARITY_CHOICES == SIMILARITIES
    assert set(rp.OPTION_CHOICES["imputers"]["imputers"]) == set(rp.IMPUTATION_METHODS)


@pytest.mark.parametrize("kwargs, message", [
    ({"imputers": ("mean", "knn")}, "imputers must be"),
    ({"similarities": ()}, "similarities must be"),
    ({"similarities": ("count", "count")}, "similarities must be"),
    ({"protocol": "some"}, "protocol must be"),
    ({"downstream": "lightgcn"}, "downstream must be"),
    ({"rates": (0.5, 1.0)}, "rates must be"),
])
def test_bad_arguments_name_the_argument(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rp.imputers_experiment(data, **kwargs)


@pytest.fixture
def no_work(monkeypatch):
    def load_data(*args, **kwargs):
        raise AssertionError("the command started working")

    monkeypatch.setattr(rp, "load_data", load_data)


@pytest.mark.parametrize("argv, start, message", [
    (["imputers", "--imputers", "featprop"], "skmm: error: ",
     "--imputers: imputers compares mean, neighmean"),
    (["featprop", "--imputers", "ppr"], "skmm: error: ", "--imputers: featprop compares"),
    (["milk", "--similarities", "count"], "skmm: error: ",
     "--similarities applies to imputers only"),
    (["featprop", "--protocol", "one"], "skmm: error: ", "--protocol applies to imputers only"),
    (["imputers", "--protocol", "some"], "usage:", "argument --protocol"),
    (["imputers", "--downstream", "lightgcn"], "usage:", "argument --downstream"),
    (["imputers", "--similarities", "dice"], "usage:", "argument --similarities"),
    (["imputers", "--model", "vbpr"], "skmm: error: ", "--model applies to featprop only"),
])
def test_command_line_errors_are_one_line_exit_2(argv, start, message, capsys, no_work):
    status = main(["reproduce", *argv])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    if start == "skmm: error: ":
        assert err.startswith(start) and err.count("\n") == 1
    else:
        assert start in err and "Traceback" not in err


def test_command_line_run(tmp_path, capsys):
    argv = ["reproduce", "imputers", "--quick", "--seeds", "1", "--rates", "0.5",
            "--imputers", "mean", "heat", "--similarities", "jaccard", "--protocol", "one",
            "--no-plot", "--threads", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "imputers: mean and std over 1 seed (0)" in out
    assert "imputers_homophily: mean and std over 1 seed (0)" in out
    assert "Reading: centred cosine (0 = the mean imputer" in out
    rows = read_csv(tmp_path / "imputers.csv")
    assert [(r["protocol"], r["method"], r["similarity"]) for r in rows] == [
        ("one", "mean", "-"), ("one", "heat", "jaccard")]
    assert not (tmp_path / "imputers.png").exists()
    config = json.loads((tmp_path / "imputers_config.json").read_text())
    assert config["similarities"] == ["jaccard"] and config["downstream"] == "none"
