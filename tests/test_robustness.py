"""The milk-robustness experiment: models fitted once on full modalities, test new items
scored as the share of them missing a modality grows."""

import csv
import math

import numpy as np
import pytest

import skmm.impute
import skmm.inspection  # imported before any test patches skmm.milk.MILKRecommender
import skmm.milk
from skmm import reproduce as rp
from skmm.reproduce._milk import milk_fit
from skmm.reproduce._robustness import (
    lose_modality,
    missing_items,
    new_item_data,
    plot_robustness,
    robustness_fit,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
FAST = {"max_epochs": 5}


@pytest.fixture(scope="module")
def data():
    return rp.default_data(quick=True)


def _row_bytes(X):
    return {np.ascontiguousarray(r, dtype=np.float32).tobytes() for r in np.asarray(X)}


def test_protocol(data, monkeypatch, tmp_path):
    """Fits never see a test item nor its interactions; at each share exactly that share of
    the test items lacks the lost modality (nested across shares), and only it; behind
    FeatProp the same items are imputed; the rows are complete."""
    fits, scored, imputed, imputer_fits = [], [], [], []

    class RecordingMILK(skmm.milk.MILKRecommender):
        def fit(self, X, y):
            fits.append((np.array(X, copy=True), y.copy(), self.validation_fraction))
            return super().fit(X, y)

        def decision_function(self, X):
            scored.append(np.array(X, copy=True))
            return super().decision_function(X)

    class RecordingFeatProp(skmm.impute.FeatPropImputer):
        def fit_transform(self, X, y=None, **params):
            imputer_fits.append(np.array(X, copy=True))
            return super().fit_transform(X, y, **params)

        def transform(self, X):
            imputed.append(np.array(X, copy=True))
            return super().transform(X)

    monkeypatch.setattr(skmm.milk, "MILKRecommender", RecordingMILK)
    monkeypatch.setattr(skmm.impute, "FeatPropImputer", RecordingFeatProp)
    n_items = data.X.shape[0]
    assert len(_row_bytes(data.X)) == n_items  # rows identify items
    rows = rp.reproduce_robustness(data, seeds=(3,), milk_params=FAST, out=tmp_path,
                                   progress=False)

    n_test = n_val = round(0.1 * n_items)
    assert len(fits) == 2 and len(imputer_fits) == 2  # one per model, shared with FeatProp
    index = {r.tobytes(): i for i, r in enumerate(np.asarray(data.X, np.float32))}
    all_y = rp._data.interactions(data)
    for X, y, fraction in fits:
        # 20% new items: validation ones (held out by MILK itself) and test ones (never).
        assert X.shape[0] == n_items - n_test and not np.isnan(X).any()
        assert fraction * X.shape[0] == pytest.approx(n_val)
        fitted = np.array([index[r.tobytes()] for r in np.asarray(X, np.float32)])
        users = np.flatnonzero(all_y[fitted].getnnz(axis=0) > 0)
        np.testing.assert_array_equal(y.toarray(), all_y[fitted][:, users].toarray())
    for X in imputer_fits:
        np.testing.assert_array_equal(X, fits[0][0])
    # 2 models x 2 modalities x 5 shares, alone then behind FeatProp; the test items are
    # exactly the items never fitted.
    assert len(scored) == 2 * 2 * len(SHARES) * 2 and len(imputed) == len(scored) // 2
    test_bytes = _row_bytes(scored[0])
    assert scored[0].shape[0] == n_test and not test_bytes & _row_bytes(fits[0][0])
    assert len(test_bytes | _row_bytes(fits[0][0])) == n_items
    sizes = data.modalities
    blocks = [slice(0, sizes[0]), slice(sizes[0], sum(sizes))]
    for model in range(2):
        calls = scored[model * 20:(model + 1) * 20]
        transformed = imputed[model * 10:(model + 1) * 10]
        for m in range(2):
            previous = set()
            for j, share in enumerate(SHARES):
                X_plain, X_imputed = calls[m * 10 + 2 * j], calls[m * 10 + 2 * j + 1]
                missing = set(np.flatnonzero(np.isnan(X_plain[:, blocks[m]]).all(axis=1)))
                assert np.isnan(X_plain[:, blocks[m]]).any(axis=1).sum() == len(missing)
                assert len(missing) == round(share * n_test)
                assert not np.isnan(X_plain[:, blocks[1 - m]]).any()
                assert previous <= missing
                previous = missing
                # FeatProp received those very items and filled them, observed values kept.
                np.testing.assert_array_equal(transformed[m * 5 + j], X_plain)
                assert not np.isnan(X_imputed).any()
                observed = ~np.isnan(X_plain)
                np.testing.assert_array_equal(X_imputed[observed], X_plain[observed])
    _check_rows(rows, data)
    written = list(csv.DictReader(open(tmp_path / "milk_robustness.csv", newline="")))
    assert len(written) == len(rows) == 2 * 2 * len(SHARES) * 2
    assert (tmp_path / "milk_robustness.png").stat().st_size > 1000


def _check_rows(rows, data):
    names = data.modality_names
    labels = ["MILK", "MILK + FeatProp", "DUIF-like", "DUIF-like + FeatProp"]
    keys = {(r["lost"], r["share"], r["model"], r["seed"]) for r in rows}
    assert keys == {(lost, s, m, 3) for lost in names for s in SHARES for m in labels}
    alone = [f"{metric}@20 {n} alone" for metric in ("ndcg", "recall") for n in names]
    for r in rows:
        assert set(r) == {"lost", "share", "model", "seed", "recall@20", "ndcg@20", *alone,
                          "epochs", "seconds"}
        assert all(0 <= r[c] <= 1 for c in ("recall@20", "ndcg@20", *alone))
        assert r["epochs"] == FAST["max_epochs"] and math.isfinite(r["seconds"])
    by = {(r["lost"], r["share"], r["model"]): r for r in rows}
    for model in ("MILK", "DUIF-like"):
        full = by[(names[0], 0.0, model)]
        # Nothing missing: the same scores whichever modality is "lost", with or without
        # the imputer (it has nothing to fill).
        for lost in names:
            for label in (model, model + " + FeatProp"):
                assert by[(lost, 0.0, label)]["ndcg@20"] == full["ndcg@20"]
        # Every test item missing modality m takes the same fill in m: a constant shift of
        # each user's scores, so the ranking is the other modality's projection alone.
        for m, lost in enumerate(names):
            other = names[1 - m]
            for metric in ("ndcg", "recall"):
                assert by[(lost, 1.0, model)][f"{metric}@20"] == pytest.approx(
                    full[f"{metric}@20 {other} alone"], abs=1e-6)


def test_the_shared_model_is_the_pipelines(data):
    """The "+ FeatProp" rows are those of Pipeline(FeatPropImputer(), model) fitted as one."""
    from sklearn.pipeline import make_pipeline

    from skmm.metrics import ndcg_at_k, recall_at_k

    rows = robustness_fit(data, seed=1, model="DUIF-like", models=rp.MILK_MODELS,
                          params=FAST, shares=(0.5,))
    split = new_item_data(data, 1)
    pipe = make_pipeline(skmm.impute.FeatPropImputer(), skmm.milk.MILKRecommender(
        data.modalities, random_state=1,
        validation_fraction=split["val_items"].size / split["fit_items"].size,
        **{**rp.MILK_SCHEDULE, **rp.MILK_MODELS["DUIF-like"], **FAST}))
    pipe.fit(data.X[split["fit_items"]], split["Y_fit"])
    X_test = data.X[split["test_items"]]
    for m, lost in enumerate(data.modality_names):
        X_share = lose_modality(X_test, data.modalities, m,
                                missing_items(X_test.shape[0], X_test.shape[0] // 2, 1, m))
        scores = pipe.decision_function(X_share)
        row = next(r for r in rows if r["lost"] == lost and r["model"].endswith("FeatProp"))
        assert row["ndcg@20"] == ndcg_at_k(split["Y_test"], scores, k=20)
        assert row["recall@20"] == recall_at_k(split["Y_test"], scores, k=20)


def test_split_and_full_modality_rows_are_the_milk_experiments(data):
    """Same seed, same split and fit as the milk experiment: 0% missing is its FTFT row."""
    rows = robustness_fit(data, seed=2, model="MILK", models=rp.MILK_MODELS, params=FAST,
                          shares=(0.0,))
    ftft = next(r for r in milk_fit(data, seed=2, train="FT", model="MILK", impute=False,
                                    models=rp.MILK_MODELS, params=FAST)
                if r["setting"] == "FTFT")
    for r in rows:
        assert (r["ndcg@20"], r["recall@20"], r["epochs"]) == \
            (ftft["ndcg@20"], ftft["recall@20"], ftft["epochs"])
    split = new_item_data(data, 2)
    assert len(split["fit_items"]) + len(split["test_items"]) == data.X.shape[0]
    assert not np.intersect1d(split["fit_items"], split["test_items"]).size
    assert np.isin(split["val_items"], split["fit_items"]).all()


def test_missing_items_are_nested_and_seeded():
    a = missing_items(40, 30, 0, 1)
    assert len(set(a)) == 30 and set(missing_items(40, 10, 0, 1)) <= set(a)
    np.testing.assert_array_equal(a, missing_items(40, 30, 0, 1))
    assert not np.array_equal(a, missing_items(40, 30, 0, 0))
    X = np.arange(12.0).reshape(3, 4)
    out = lose_modality(X, [3, 1], 0, [1])
    assert np.isnan(out[1, :3]).all() and out[1, 3] == 7
    assert not np.isnan(np.delete(out, 1, 0)).any()
    assert not np.isnan(X).any()  # the input is left alone


def test_registered_and_validated(data):
    assert rp.EXPERIMENTS["milk-robustness"] is rp.robustness_experiment
    e = rp.robustness_experiment(data, seeds=2, quick=True)
    assert e.name == "milk_robustness" and len(e.tasks) == 4
    assert e.config["milk_params"] == {"max_epochs": 30} and e.config["shares"] == list(SHARES)
    assert len(e.tasks[0].rows) == 2 * len(SHARES) * 2
    for bad in ((1.5,), (), (0.5, 0.5), (True,)):
        with pytest.raises(ValueError, match="shares must be"):
            rp.robustness_experiment(data, shares=bad)
    for bad in ((), ("MILK", "MILK"), ("VBPR",)):
        with pytest.raises(ValueError, match="models must be"):
            rp.robustness_experiment(data, models=bad)
    with pytest.raises(ValueError, match="seeds"):
        rp.robustness_experiment(data, seeds=0)


def test_plot_one_panel_per_modality_legend_covers_no_data():
    from matplotlib.collections import LineCollection

    models = ["MILK", "MILK + FeatProp", "DUIF-like", "DUIF-like + FeatProp"]
    rows = [{"lost": lost, "share": s, "model": m, "seed": seed,
             "ndcg@20": 0.5 - 0.2 * s + 0.01 * seed + 0.02 * j}
            for seed in range(3) for lost in ("text", "audio") for s in SHARES
            for j, m in enumerate(models)]
    fig = plot_robustness(rows, "title", lost_order=("text", "audio"), model_order=models)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert [ax.get_title() for ax in fig.axes] == ["text lost", "audio lost"]
    assert [len(ax.containers) for ax in fig.axes] == [4, 4]  # one errorbar per model
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    # Every drawn point: markers, line vertices and the ends of the error bars, on screen.
    points = [ax.transData.transform(np.vstack([line.get_xydata() for line in ax.lines]))
              for ax in fig.axes]
    points += [ax.transData.transform(np.vstack(c.get_segments()).reshape(-1, 2))
               for ax in fig.axes for c in ax.collections if isinstance(c, LineCollection)]
    points = np.vstack(points)
    assert len(points) > 2 * 4 * len(SHARES)
    inside = ((points[:, 0] >= box.x0) & (points[:, 0] <= box.x1) &
              (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1))
    assert not inside.any()
    # And the legend lies outside every panel.
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    assert any("error bars" in t.get_text() and "3 seeds" in t.get_text() for t in fig.texts)
