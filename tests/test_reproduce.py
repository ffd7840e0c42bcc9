"""The experiments behind ``python -m skmm reproduce`` and their runner."""

import csv
import dataclasses
import json
import os
import signal
import time

import numpy as np
import pytest

from skmm import reproduce as rp
from skmm.reproduce._progress import Progress
from skmm.reproduce._runner import _interleave


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def without_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# ------------------------------------------------------------------ a toy experiment
# Module level, so that its fits pickle into joblib's worker processes.

CALLS = []


def toy_fit(data, *, seed, setting, fail_at=None, sigint_at=None, delay=0.0):
    """Two rows per fit; a "fit" may raise an interrupt, or catch it as skorch does."""
    CALLS.append(seed)
    if seed == fail_at:
        raise KeyboardInterrupt
    if seed == sigint_at:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the signal is handled here
        except KeyboardInterrupt:
            pass  # what skorch's partial_fit does: the half-trained model is returned
    time.sleep(delay)
    return [{"setting": f"{setting}-{part}", "seed": seed, "score": seed + 0.5 * part}
            for part in (0, 1)]


def toy(seeds=range(4), config=None, **options):
    from functools import partial

    return rp.Experiment(
        name="toy", run=partial(toy_fit, **options),
        tasks=tuple(rp.Task({"seed": s, "setting": "A"}, rows=(("A-0", s), ("A-1", s)))
                    for s in seeds),
        columns={"setting": str, "seed": int, "score": float}, key=("setting", "seed"),
        config={"kind": "toy", **(config or {})},
        report=rp.Report(groups=("setting",), reading=("a toy over {seeds}",),
                         metrics=("score",)))


@pytest.fixture
def calls():
    CALLS.clear()
    yield CALLS
    CALLS.clear()


def run_toy(out, experiment=None, **kwargs):
    return rp.run_experiments([experiment or toy()], data=None, out=out, progress=False,
                              **kwargs)["toy"]


# ------------------------------------------------------------------ the papers' experiments

def test_featprop_experiment_writes_csv_plot_and_table(tmp_path):
    data = rp.default_data(quick=True)
    rows = rp.reproduce_featprop(data, seeds=1, rates=(0.5,), model_params={"max_epochs": 1},
                                 out=tmp_path, progress=False)
    assert {r["strategy"] for r in rows} == set(rp.FEATPROP_STRATEGIES)
    assert all(0 <= r["recall@20"] <= 1 and 0 <= r["ndcg@20"] <= 1 for r in rows)
    assert len(read_csv(tmp_path / "featprop.csv")) == len(rows)
    assert (tmp_path / "featprop.png").stat().st_size > 1000
    config = json.loads((tmp_path / "featprop_config.json").read_text())
    assert config["rates"] == [0.5] and config["model"] == "vbpr"
    assert config["model_params"] == {"max_epochs": 1, "batch_size": 1024, "lr": 0.005}
    assert config["data"]["n_items"] == data.X.shape[0]
    # Every estimator parameter, defaults included: a changed default is another configuration.
    from skmm import FeatPropImputer, VBPRRecommender

    assert config["estimators"]["model"]["n_factors"] == VBPRRecommender().n_factors
    assert config["estimators"]["featprop"]["n_neighbors"] == FeatPropImputer().n_neighbors
    header, table = rp.summarize(rows, ("rate", "strategy"))
    assert header[:2] == ["rate", "strategy"] and len(table) == 4
    assert "50%" in rp.format_table(header, table)


def test_featprop_row_is_an_independent_computation():
    """A row of the experiment is VBPR after the named imputation, computed here by hand."""
    from skmm import BaselineImputer, VBPRRecommender, simulate_missing
    from skmm.metrics import recall_at_k

    data = rp.default_data(quick=True)
    experiment = rp.featprop_experiment(data, seeds=(3,), rates=(0.3,), imputers=("mean",),
                                        model_params={"max_epochs": 2})
    (task,) = experiment.tasks
    (row,) = experiment.run(data, **task.args)
    X_miss, _ = simulate_missing(data.X, data.modalities, 0.3, mode="all", random_state=3)
    X_imp = BaselineImputer(strategy="mean").fit_transform(X_miss)
    model = VBPRRecommender(max_epochs=2, batch_size=1024, lr=0.005, random_state=3)
    scores = model.fit(X_imp, data.Y_train).decision_function(X_imp)
    assert row["recall@20"] == recall_at_k(data.Y_test, scores, k=20, exclude=data.Y_train)
    assert (row["rate"], row["strategy"], row["seed"]) == (0.3, "mean", 3)


def test_freedom_row_is_an_independent_computation():
    """With --model freedom, a row is FREEDOM fitted on the imputed features with the data's
    validation split for early stopping and the authors' graph weights (0.9 / 0.1)."""
    from skmm import FeatPropImputer, FREEDOMRecommender, simulate_missing
    from skmm.metrics import ndcg_at_k

    data = rp.default_data(quick=True)
    experiment = rp.featprop_experiment(data, seeds=(1,), rates=(0.5,), imputers=("featprop",),
                                        model="freedom", model_params={"max_epochs": 3})
    (task,) = experiment.tasks
    (row,) = experiment.run(data, **task.args)
    X_miss, _ = simulate_missing(data.X, data.modalities, 0.5, mode="all", random_state=1)
    X_imp = FeatPropImputer().fit_transform(X_miss, data.Y_train)
    model = FREEDOMRecommender(data.modalities, modality_weights=(0.9, 0.1), max_epochs=3,
                               patience=5, batch_size=1024, n_neighbors=10, edge_dropout=0.8,
                               modality_loss_weight=1e-5, zero_rows="rank_first",
                               random_state=1)
    scores = model.fit(X_imp, data.Y_train, y_val=data.Y_val).decision_function(X_imp)
    assert row["ndcg@20"] == ndcg_at_k(data.Y_test, scores, k=20, exclude=data.Y_train)


def test_summarize_means_and_stds():
    rows = [{"m": "a", "recall@20": v, "ndcg@20": 2 * v} for v in (0.1, 0.3)]
    header, table = rp.summarize(rows, ("m",))
    np.testing.assert_allclose(table[0][1:], [0.2, 0.1, 0.4, 0.2])


def test_default_data_splits_interactions():
    data = rp.default_data(quick=True)
    total = data.Y_train + data.Y_val + data.Y_test
    assert (total != data.Y).nnz == 0
    assert data.Y_train.multiply(data.Y_test).nnz == 0
    assert 0.75 < data.Y_train.nnz / data.Y.nnz < 0.85


def test_milk_experiment_protocol(tmp_path, monkeypatch):
    """New items are never fitted; MTMT training items miss modalities unless imputed."""
    import skmm.milk

    seen = []

    class Recording(skmm.milk.MILKRecommender):
        def fit(self, X, y):
            seen.append(("fit", X.shape[0], np.isnan(X).any(axis=1).mean(), self.environments))
            return super().fit(X, y)

        def decision_function(self, X):
            seen.append(("score", X.shape[0], np.isnan(X).any(axis=1).mean(), self.environments))
            return super().decision_function(X)

    monkeypatch.setattr(skmm.milk, "MILKRecommender", Recording)
    data = rp.default_data(quick=True)
    n_items = data.X.shape[0]
    rows = rp.reproduce_milk(data, seeds=1, milk_params={"max_epochs": 2}, out=tmp_path,
                             progress=False)
    got = {(r["setting"], r["model"]) for r in rows}
    assert got == {("FTFT", "MILK"), ("FTFT", "DUIF-like"), ("FTMT", "MILK"),
                   ("FTMT", "DUIF-like"), ("MTMT", "MILK"), ("MTMT", "DUIF-like"),
                   ("MTMT", "MILK + FeatProp"), ("MTMT", "DUIF-like + FeatProp")}
    assert all(0 <= r["recall@20"] <= 1 and 0 <= r["ndcg@20"] <= 1 for r in rows)
    fits = [s for s in seen if s[0] == "fit"]
    scores = [s for s in seen if s[0] == "score"]
    assert {s[1] for s in fits} == {n_items - n_items // 10}
    assert {s[1] for s in scores} == {n_items // 10}
    # Two full-modality fits, two with 30% of items missing a modality, two imputed.
    assert sorted(round(s[2], 2) for s in fits) == [0.0, 0.0, 0.0, 0.0, 0.3, 0.3]
    # FTFT scores complete items; FTMT and MTMT items half of which miss one modality, except
    # behind the imputer, which fills them first.
    assert sorted(round(s[2], 2) for s in scores) == [0.0] * 4 + [0.5] * 4
    assert {s[3] for s in fits} == {"cyclic", "none"}
    assert len(read_csv(tmp_path / "milk.csv")) == len(rows) == 8
    assert (tmp_path / "milk.png").stat().st_size > 1000
    summary = read_csv(tmp_path / "milk_summary.csv")
    assert [r["setting"] for r in summary] == ["FTFT"] * 2 + ["FTMT"] * 2 + ["MTMT"] * 4
    # One seed: the std is 0 and the mean is the row's value.
    first = next(r for r in rows if r["setting"] == "FTFT" and r["model"] == "MILK")
    assert summary[0]["ndcg@20"] == f"{first['ndcg@20']:.4f} ± 0.0000"


def test_parallel_rows_identical_to_sequential(tmp_path):
    """--jobs 2 gives the rows of --jobs 1 --threads 1, for both papers' experiments."""
    data = rp.default_data(quick=True)

    def experiments():
        return [rp.featprop_experiment(data, seeds=2, rates=(0.5,),
                                       model_params={"max_epochs": 2}),
                rp.milk_experiment(data, seeds=1, milk_params={"max_epochs": 2})]

    one = rp.run_experiments(experiments(), data, out=tmp_path / "one", jobs=1, threads=1,
                             progress=False)
    two = rp.run_experiments(experiments(), data, out=tmp_path / "two", jobs=2,
                             progress=False)
    for name in ("featprop", "milk"):
        assert len(one[name]) == {"featprop": 8, "milk": 8}[name]
        assert without_seconds(one[name]) == without_seconds(two[name])
        # The CSVs are rewritten in the tasks' order, whatever order the fits ended in.
        assert without_seconds(read_csv(tmp_path / "one" / f"{name}.csv")) == \
            without_seconds(read_csv(tmp_path / "two" / f"{name}.csv"))
        assert (tmp_path / "one" / f"{name}_summary.csv").read_text() == \
            (tmp_path / "two" / f"{name}_summary.csv").read_text()


# ------------------------------------------------------------------ streaming and resuming

def test_rows_are_written_as_each_fit_ends(tmp_path, calls):
    seen = []

    def fit(data, *, seed, setting):
        # The rows of every earlier fit are already in the file, complete.
        seen.append(len(read_csv(tmp_path / "toy.csv")))
        return toy_fit(data, seed=seed, setting=setting)

    experiment = dataclasses.replace(toy(), run=fit)
    rows = run_toy(tmp_path, experiment)
    assert seen == [0, 2, 4, 6]
    assert len(rows) == 8


def test_resume_runs_only_the_missing_fits(tmp_path, calls):
    run_toy(tmp_path, toy(seeds=range(2)))
    assert calls == [0, 1]
    messages = []
    rows = rp.run_experiments([toy(seeds=range(4))], None, out=tmp_path, if_exists="resume",
                              echo=messages.append)["toy"]
    assert calls == [0, 1, 2, 3]
    assert messages == ["toy 4 fits (2 already done): 2 fits to run, one at a time."]
    assert [(r["setting"], r["seed"]) for r in rows] == [
        (f"A-{p}", s) for s in range(4) for p in (0, 1)]
    assert without_seconds(read_csv(tmp_path / "toy.csv")) == [
        {"setting": r["setting"], "seed": str(r["seed"]), "score": str(r["score"])}
        for r in rows]
    # Nothing left: a resume is a no-op that remakes the summary.
    (tmp_path / "toy_summary.csv").unlink()
    run_toy(tmp_path, toy(seeds=range(4)), if_exists="resume")
    assert calls == [0, 1, 2, 3]
    assert (tmp_path / "toy_summary.csv").exists()


def test_resume_reruns_a_fit_written_in_part_and_drops_a_torn_line(tmp_path, calls):
    run_toy(tmp_path, toy(seeds=range(3)))
    lines = (tmp_path / "toy.csv").read_text().splitlines(keepends=True)
    # Seed 1 lost its second row; seed 2's second row is cut mid-line (a killed write).
    damaged = lines[:3] + lines[4:6] + [lines[6][:4]]
    (tmp_path / "toy.csv").write_text("".join(damaged))
    calls.clear()
    rows = run_toy(tmp_path, toy(seeds=range(3)), if_exists="resume")
    assert sorted(calls) == [1, 2]
    assert [(r["setting"], r["seed"]) for r in rows] == [
        (f"A-{p}", s) for s in range(3) for p in (0, 1)]


def test_rows_of_other_seeds_are_kept(tmp_path, calls):
    run_toy(tmp_path, toy(seeds=range(3)))
    rows = run_toy(tmp_path, toy(seeds=(0,)), if_exists="resume")
    assert calls == [0, 1, 2]
    assert sorted({r["seed"] for r in rows}) == [0, 1, 2]


@pytest.mark.parametrize("change, field", [
    (lambda: toy(config={"epochs": 3}), "epochs"),
    (lambda: toy(config={"kind": "other"}), "kind"),
])
def test_resume_refuses_another_configuration(tmp_path, calls, change, field):
    run_toy(tmp_path)
    before = (tmp_path / "toy.csv").read_text()
    with pytest.raises(rp.RefusedError, match=f"another configuration.*{field}"):
        run_toy(tmp_path, change(), if_exists="resume")
    assert (tmp_path / "toy.csv").read_text() == before


def test_resume_refuses_other_data(tmp_path):
    data = rp.default_data(quick=True)
    other = rp.default_data(random_state=1, quick=True)
    rp.run_experiments([toy(seeds=(0,))], data, out=tmp_path, progress=False)
    with pytest.raises(rp.RefusedError, match="data.sha256"):
        rp.run_experiments([toy(seeds=(0,))], other, out=tmp_path, if_exists="resume",
                           progress=False)


def test_resume_refuses_rows_without_configuration(tmp_path):
    run_toy(tmp_path)
    (tmp_path / "toy_config.json").unlink()
    with pytest.raises(rp.RefusedError, match="no toy_config.json"):
        run_toy(tmp_path, if_exists="resume")


def test_existing_results_are_refused_before_any_fit(tmp_path, calls):
    run_toy(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls.clear()
    with pytest.raises(rp.RefusedError, match="--resume .* --overwrite"):
        run_toy(tmp_path)
    assert calls == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_overwrite_replaces_the_results(tmp_path, calls):
    run_toy(tmp_path, toy(seeds=range(3)))
    rows = run_toy(tmp_path, toy(seeds=(5,)), if_exists="overwrite")
    assert {r["seed"] for r in rows} == {5}
    assert {r["seed"] for r in read_csv(tmp_path / "toy.csv")} == {"5"}


def test_rows_must_be_the_declared_ones(tmp_path):
    def fit(data, *, seed, setting):
        return toy_fit(data, seed=seed + 1, setting=setting)

    experiment = dataclasses.replace(toy(), run=fit)
    with pytest.raises(RuntimeError, match="declares"):
        run_toy(tmp_path, experiment)


# ------------------------------------------------------------------ interrupts

@pytest.mark.parametrize("options", [{"fail_at": 2}, {"sigint_at": 2}],
                         ids=["fit-raises", "fit-catches-it"])
def test_interrupt_keeps_complete_rows_only(tmp_path, calls, options):
    with pytest.raises(rp.Interrupted) as info:
        run_toy(tmp_path, toy(seeds=range(5), **options))
    assert str(info.value) == "interrupted: 2 of 5 fits done; rerun with --resume"
    # The interrupted fit's rows are not written, even when it returned them.
    assert [r["seed"] for r in read_csv(tmp_path / "toy.csv")] == ["0", "0", "1", "1"]
    assert not (tmp_path / "toy_summary.csv").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    calls.clear()
    run_toy(tmp_path, toy(seeds=range(5)), if_exists="resume")
    assert calls == [2, 3, 4]


def test_interrupt_inside_a_skorch_fit_drops_its_row(tmp_path):
    """skorch's fit catches KeyboardInterrupt and returns; the runner still drops the row."""
    with pytest.raises(rp.Interrupted, match="1 of 3 fits done"):
        rp.run_experiments([_skorch_experiment()], None, out=tmp_path, progress=False)
    written = read_csv(tmp_path / "skorch.csv")
    assert [r["seed"] for r in written] == ["0"]
    # The interrupted fit did return, after 1 of its 5 epochs: skorch swallowed the interrupt.
    assert SKORCH_EPOCHS == [5, 1]


SKORCH_EPOCHS = []


def skorch_fit(data, *, seed):
    import skorch
    import torch

    class Interrupt(skorch.callbacks.Callback):
        def on_epoch_end(self, net, **kwargs):
            if seed == 1:
                os.kill(os.getpid(), signal.SIGINT)

    X = np.random.default_rng(seed).normal(size=(32, 3)).astype(np.float32)
    net = skorch.NeuralNetRegressor(torch.nn.Linear(3, 1), max_epochs=5, train_split=None,
                                    callbacks=[Interrupt()], verbose=0)
    net.fit(X, X[:, :1])
    SKORCH_EPOCHS.append(len(net.history))
    return [{"seed": seed, "loss": float(net.history[-1, "train_loss"])}]


def _skorch_experiment():
    SKORCH_EPOCHS.clear()
    return rp.Experiment(
        name="skorch", run=skorch_fit,
        tasks=tuple(rp.Task({"seed": s}, rows=((s,),)) for s in range(3)),
        columns={"seed": int, "loss": float}, key=("seed",), config={},
        report=rp.Report(groups=(), reading=(), metrics=("loss",)))


def test_interrupt_in_a_worker_keeps_complete_rows_only(tmp_path, calls):
    """--jobs 2: the fit of seed 3 is interrupted in its worker process and catches it."""
    with pytest.raises(rp.Interrupted) as info:
        run_toy(tmp_path, toy(seeds=range(8), sigint_at=3, delay=0.2), jobs=2)
    written = read_csv(tmp_path / "toy.csv")
    seeds = [int(r["seed"]) for r in written]
    assert 3 not in seeds
    # Whole fits only, and the message counts them.
    assert sorted(seeds) == sorted(2 * sorted(set(seeds)))
    assert info.value.done == len(set(seeds)) and info.value.total == 8


# ------------------------------------------------------------------ progress and report

def test_eta_weighs_each_experiment_by_its_own_fit_time(monkeypatch):
    progress = Progress({"fast": 4, "slow": 2}, enabled=False)
    monkeypatch.setattr(time, "time", lambda: 110.0)
    progress.update("fast", 100.0, 1.0)
    progress.update("fast", 101.0, 3.0)
    progress.update("slow", 102.0, 16.0)
    # Left: 2 fast fits at 2 s and 1 slow one at 16 s, 20 s of work; 20 s of work were done
    # in 10 s of wall time (two jobs).
    assert progress.eta() == pytest.approx(20 * 10 / 20)


def test_eta_before_an_experiments_first_fit_uses_the_overall_mean(monkeypatch):
    progress = Progress({"a": 2, "b": 3}, enabled=False)
    monkeypatch.setattr(time, "time", lambda: 4.0)
    progress.update("a", 0.0, 4.0)
    assert progress.eta() == pytest.approx((1 + 3) * 4.0)


def test_interleave_advances_each_list_in_proportion():
    merged = _interleave([list("abcd"), [1, 2]])
    assert merged == ["a", 1, "b", "c", 2, "d"]


def test_report_says_how_to_read_the_table():
    data = rp.default_data(quick=True)
    experiment = rp.milk_experiment(data, seeds=(0, 1))
    rows = [{"setting": s, "model": m, "seed": seed, "recall@20": 0.1 * seed,
             "ndcg@20": 0.0, "epochs": 1, "seconds": 0.0}
            for seed in (0, 1) for s, m in (("MTMT", "MILK"), ("FTFT", "MILK"))]
    text = rp.format_report(experiment, rows).splitlines()
    assert text[0] == "milk: mean and std over 2 seeds (0-1)"
    assert [line.split()[0] for line in text[2:4]] == ["FTFT", "MTMT"]  # the paper's order
    reading = text[4:]
    assert "std" in reading[0] and "2 seeds (0-1)" in reading[0]
    assert "synthetic" in reading[1]
    assert rp.REPRODUCTION_PAGE in reading[2]


def _overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_milk_plot_legend_covers_no_bar_and_explains_error_bars():
    from matplotlib.collections import LineCollection

    from skmm.reproduce._report import plot_bars

    models = ["MILK", "DUIF-like", "MILK + FeatProp", "DUIF-like + FeatProp"]
    rows = [{"setting": s, "model": m, "seed": seed, "recall@20": 0.9 - 0.01 * seed,
             "ndcg@20": 0.8 + 0.01 * seed}
            for seed in range(3) for s in rp.MILK_SETTINGS for m in models
            if s == "MTMT" or "FeatProp" not in m]
    fig = plot_bars(rows, "title", groups_order=rp.MILK_SETTINGS)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    artists = [p for ax in fig.axes for p in ax.patches] + \
        [c for ax in fig.axes for c in ax.collections if isinstance(c, LineCollection)]
    assert len([p for ax in fig.axes for p in ax.patches]) == 2 * 8
    assert not any(_overlaps(box, a.get_window_extent(renderer)) for a in artists)
    assert any("error bars" in t.get_text() and "3 seeds" in t.get_text() for t in fig.texts)
